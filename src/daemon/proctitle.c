/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * proctitle.c - process titles (see proctitle.h).
 *
 * Linux shows /proc/PID/cmdline, which is the memory the kernel laid out
 * for argv and then environ, one string after the other.  A longer title
 * than argv[0] needs the whole area: the environment strings are copied to
 * the heap and environ pointed at the copies, then the title is written
 * over argv[0] and the rest of the area is cleared, so that ps shows the
 * title alone.  The name in /proc/PID/comm stays "goprod", for pidof.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proctitle.h"

extern char **environ;

static char *title_start;
static size_t title_len;
/* The copies live as long as the process; kept here so that they stay
 * reachable (LeakSanitizer reports them otherwise once main's frame is
 * gone); volatile, since stores to a variable nobody reads are dropped. */
static char **volatile saved_args, **volatile saved_env;

/* The end of the contiguous strings from p, walking the vector v. */
static char *
contiguous_end(char *end, char **v)
{
	for (size_t i = 0; v[i] != NULL; i++)
		if (v[i] == end + 1)
			end = v[i] + strlen(v[i]);
	return end;
}

/* A heap copy of the NULL-terminated vector v; NULL when short of memory. */
static char **
copy_vector(char **v)
{
	size_t n = 0;
	char **copy;

	while (v[n] != NULL)
		n++;
	if ((copy = calloc(n + 1, sizeof(*copy))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if ((copy[i] = strdup(v[i])) == NULL) {
			while (i > 0)
				free(copy[--i]);
			free(copy);
			return NULL;
		}
	}
	return copy;
}

char **
proctitle_init(int argc, char **argv)
{
	char *end, **env, **args;

	if (argc < 1 || argv[0] == NULL || (args = copy_vector(argv)) == NULL)
		return argv;
	end = contiguous_end(argv[0] + strlen(argv[0]), argv);
	/* The area may go on into environ only if environ is moved away. */
	if (environ != NULL && environ[0] == end + 1 &&
	    (env = copy_vector(environ)) != NULL) {
		end = contiguous_end(end, environ);
		environ = saved_env = env;
	}
	saved_args = args;
	title_start = argv[0];
	title_len = (size_t)(end - argv[0]);
	return args;
}

void
proctitle_set(const char *fmt, ...)
{
	va_list ap;

	if (title_start == NULL || title_len < 2)
		return;
	memset(title_start, 0, title_len + 1);
	va_start(ap, fmt);
	vsnprintf(title_start, title_len, fmt, ap);
	va_end(ap);
}
