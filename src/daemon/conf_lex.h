/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf_lex.h - the first pass over the text of gopro.conf, before
 * libconfuse parses it: comments blanked so that libconfuse counts lines
 * right, and the faults libconfuse misplaces or misses reported with the
 * line where they began.  Used by conf.c only.
 */
#ifndef GOPRO_CONF_LEX_H
#define GOPRO_CONF_LEX_H

#include <stddef.h>

struct conf_lex_calls {
	/* Once per fault found: its line and a message without the file. */
	void (*error)(void *arg, int line, const char *msg);
	/*
	 * Once per "name =" or "name +=", with the section it is in (NULL at
	 * the top level) and the first value as written (a list's first
	 * element; quotes and \" \\ escapes undone, "" if none): libconfuse
	 * tells nothing of an empty list, and a file that does not parse
	 * still tells goproctl where the daemon is.
	 */
	void (*assign)(void *arg, const char *section, const char *name,
	    int line, const char *value);
	void *arg;
};

/*
 * Blank every comment of text[0..len) in place (each byte but a newline
 * becomes a space), tell each assignment, and report through error: an
 * unterminated string or
 * comment, a { never closed, a NUL byte, and a ${NAME} whose variable is
 * not set.  Returns how many faults make the text unfit for libconfuse
 * (all of them but the unset variables, which are reported all the same).
 */
unsigned conf_lex(char *text, size_t len, const struct conf_lex_calls *calls);

#endif /* GOPRO_CONF_LEX_H */
