/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * proctitle.h - the process titles that ps and top show
 * ("goprod: master (generation 3)", "goprod: worker 1 (generation 3)",
 * "goprod: metrics"), as nginx shows "master process" and "worker process".
 */
#ifndef GOPRO_PROCTITLE_H
#define GOPRO_PROCTITLE_H

/*
 * Take over the memory of argv and environ for the title; environ is moved
 * to the heap first.  Call once, when nothing points into argv any more:
 * the strings of argv[1..] are overwritten by the first title.  Returns a
 * heap copy of argv for whoever still needs the arguments (an upgrade that
 * executes the previous image again), or argv itself when short of memory
 * (and then the title is left alone).
 */
char **proctitle_init(int argc, char **argv);
/* Set the title; a no-op before proctitle_init.  Cut to the space there is. */
void proctitle_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* GOPRO_PROCTITLE_H */
