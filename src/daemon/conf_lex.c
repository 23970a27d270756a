/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf_lex.c - the first pass over gopro.conf, on a copy in memory, before
 * libconfuse parses it.
 *
 * libconfuse 3.3 (the version in Debian 12) counts a "#" or "//" comment
 * as three lines and a C comment as one line more than it spans: after
 * the comments of the shipped file, "user" on line 26 was reported on line
 * 58.  Its lexer adds a line in qput() and again in qend() for each of
 * them.  Here every comment is replaced by blanks, its newlines kept, so
 * that libconfuse never sees one and counts only the real newlines.
 *
 * A comment starts where libconfuse's lexer (lexer.l) starts one: "#"
 * anywhere outside a string, "//" and "/ *" only where a token starts,
 * since a "/" inside an unquoted word belongs to the word
 * (log = file:/var/log//x).  Inside "..." a backslash escapes the next
 * byte, inside '...' too, and both kinds may span lines.
 *
 * The same walk reports what libconfuse reports at an unrelated line or
 * not at all: a string or comment still open at the end of the file (at
 * the line where it began), a { never closed ("auth {" as the last line
 * passed), a NUL byte (libconfuse would stop reading there), and a
 * ${NAME} whose variable is not set, which libconfuse silently replaces by
 * "".  ${NAME:-default} is libconfuse's way to allow an unset variable.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_lex.h"

#define DEPTH_MAX	16	/* nested { remembered for the message */
#define NAME_MAX_SHOWN	64
#define VALUE_MAX	4096	/* bytes of a value told to assign */
#define VAR_MAX		255	/* bytes of a variable name */

struct lex {
	char *p, *end;
	int line;
	unsigned faults;
	const struct conf_lex_calls *calls;
	char word[NAME_MAX_SHOWN];	/* the last unquoted word */
	bool assign;			/* the last token was = or += */
	int depth;
	int open_line[DEPTH_MAX];
	bool open_list[DEPTH_MAX];
	char open_name[DEPTH_MAX][NAME_MAX_SHOWN];
};

static void fault(struct lex *lx, bool fatal, int line, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static void
fault(struct lex *lx, bool fatal, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	lx->faults += fatal;
	lx->calls->error(lx->calls->arg, line, msg);
}

/* Blank p[0..n), counting and keeping its newlines. */
static void
blank(struct lex *lx, char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n')
			lx->line++;
		else
			p[i] = ' ';
	}
}

/* "#..." or "//..." up to the end of the line, the newline excluded. */
static void
line_comment(struct lex *lx)
{
	char *nl = memchr(lx->p, '\n', (size_t)(lx->end - lx->p));
	char *stop = nl != NULL ? nl : lx->end;

	blank(lx, lx->p, (size_t)(stop - lx->p));
	lx->p = stop;
}

static char *
find(char *p, const char *end, const char *what)
{
	size_t n = strlen(what);

	for (; p + n <= end; p++)
		if (memcmp(p, what, n) == 0)
			return p;
	return NULL;
}

static void
block_comment(struct lex *lx)
{
	char *close = find(lx->p + 2, lx->end, "*/");
	int begun = lx->line;

	if (close == NULL) {
		fault(lx, true, begun, "unterminated comment: the /* on this "
		    "line is not closed by */ before the end of the file");
		close = lx->end - 2;
	}
	blank(lx, lx->p, (size_t)(close + 2 - lx->p));
	lx->p = close + 2;
}

/*
 * At "${": libconfuse takes everything up to the next "}" as the name, even
 * across lines and quotes, and does not count the lines it skips.  A name
 * is therefore required to end on its line, and its variable to be set.
 */
static void
variable(struct lex *lx)
{
	char *close = memchr(lx->p, '}', (size_t)(lx->end - lx->p));
	char name[VAR_MAX + 1];
	size_t n;

	if (close == NULL) {		/* libconfuse reads a plain "$" */
		lx->p++;
		return;
	}
	n = (size_t)(close - lx->p - 2);
	if (memchr(lx->p, '\n', n + 2) != NULL || memchr(lx->p, '"', n + 2)) {
		fault(lx, true, lx->line, "\"${\" without its \"}\" on the "
		    "same line (expected ${NAME}, or \\$ for a literal $)");
		lx->p += 2;
		return;
	}
	lx->p = close + 1;
	if (find(close - n, close, ":-") != NULL)
		return;
	if (n > VAR_MAX) {
		fault(lx, false, lx->line, "a ${NAME} of more than %d bytes "
		    "(expected the name of an environment variable)", VAR_MAX);
		return;
	}
	memcpy(name, close - n, n);
	name[n] = '\0';
	if (getenv(name) == NULL)
		fault(lx, false, lx->line, "${%s}: the environment variable %s "
		    "is not set (expected it set, or ${%s:-default})", name,
		    name, name);
}

/* After the opening quote of "..." or '...'; only "..." expands ${}. */
static void
string(struct lex *lx, char quote)
{
	int begun = lx->line;

	while (lx->p < lx->end && *lx->p != quote) {
		if (*lx->p == '\\' && lx->p + 1 < lx->end) {
			lx->line += lx->p[1] == '\n';
			lx->p += 2;
		} else if (quote == '"' && *lx->p == '$' &&
		    lx->p + 1 < lx->end && lx->p[1] == '{') {
			variable(lx);
		} else {
			lx->line += *lx->p == '\n';
			lx->p++;
		}
	}
	if (lx->p == lx->end) {
		fault(lx, true, begun, "unterminated string: the %c on this "
		    "line is not closed before the end of the file", quote);
		return;
	}
	lx->p++;
}

static void
open_brace(struct lex *lx)
{
	if (lx->depth < DEPTH_MAX) {
		lx->open_line[lx->depth] = lx->line;
		lx->open_list[lx->depth] = lx->assign;
		snprintf(lx->open_name[lx->depth], NAME_MAX_SHOWN, "%s",
		    lx->word);
	}
	lx->depth++;
}

/* A word as libconfuse's unquoted string: up to a byte of its own. */
static void
word(struct lex *lx)
{
	const char *start = lx->p;
	size_t n;

	while (lx->p < lx->end && strchr(" #\"'\t\n\r={}()+,*", *lx->p) == NULL)
		lx->p++;
	if (lx->p == start) {		/* a byte libconfuse skips */
		lx->p++;
		return;
	}
	n = (size_t)(lx->p - start);
	if (n >= NAME_MAX_SHOWN)
		n = NAME_MAX_SHOWN - 1;
	memcpy(lx->word, start, n);
	lx->word[n] = '\0';
}

/*
 * The first value after the = at p, as libconfuse would read it, but only
 * the common escapes: enough to find a path, not to replace the parse.
 */
static void
first_value(const char *p, const char *end, char *buf, size_t len)
{
	size_t n = 0;
	char quote = 0;

	p += *p == '+' ? 2 : 1;
	while (p < end && strchr(" \t\r\n{", *p) != NULL)
		p++;
	if (p < end && (*p == '"' || *p == '\''))
		quote = *p++;
	for (; p < end && n + 1 < len; p++) {
		if (quote == 0 && strchr(" #\"'\t\n\r={}()+,*", *p) != NULL)
			break;
		if (quote != 0 && *p == quote)
			break;
		if (quote != 0 && *p == '\\' && p + 1 < end &&
		    (p[1] == quote || p[1] == '\\'))
			p++;
		buf[n++] = *p;
	}
	buf[n] = '\0';
}

static void
tell_assign(struct lex *lx)
{
	const char *section = lx->depth == 0 ? NULL :
	    lx->open_name[lx->depth <= DEPTH_MAX ? lx->depth - 1 :
	    DEPTH_MAX - 1];
	char value[VALUE_MAX];

	if (lx->calls->assign == NULL)
		return;
	first_value(lx->p, lx->end, value, sizeof(value));
	lx->calls->assign(lx->calls->arg, section, lx->word, lx->line, value);
}

/* One token, or one comment, from lx->p. */
static void
token(struct lex *lx)
{
	char c = *lx->p, next = lx->p + 1 < lx->end ? lx->p[1] : '\0';
	bool assign = false;

	if (c == '#' || (c == '/' && next == '/'))
		line_comment(lx);
	else if (c == '/' && next == '*')
		block_comment(lx);
	else if (c == '"' || c == '\'') {
		lx->p++;
		string(lx, c);
	} else if (c == '$' && next == '{')
		variable(lx);
	else if (c == '{') {
		open_brace(lx);
		lx->p++;
	} else if (c == '}') {
		lx->depth -= lx->depth > 0;	/* an extra } is libconfuse's */
		lx->p++;
	} else if (c == '\n' || c == ' ' || c == '\t' || c == '\r' ||
	    c == '(' || c == ')' || c == ',' || c == '=' || c == '+') {
		lx->line += c == '\n';
		assign = c == '=' || (c == '+' && next == '=');
		if (assign)
			tell_assign(lx);
		lx->p += 1 + (c == '+' && next == '=');
		if (c == '\n' || c == ' ' || c == '\t' || c == '\r')
			assign = lx->assign;	/* blanks do not count */
	} else
		word(lx);
	lx->assign = assign;
}

static void
unclosed(struct lex *lx, int last_line)
{
	int i = lx->depth <= DEPTH_MAX ? lx->depth - 1 : DEPTH_MAX - 1;

	fault(lx, true, last_line, "the file ends inside the %s \"%s\" "
	    "opened on line %d (expected a closing })",
	    lx->open_list[i] ? "list" : "section", lx->open_name[i],
	    lx->open_line[i]);
}

unsigned
conf_lex(char *text, size_t len, const struct conf_lex_calls *calls)
{
	struct lex lx;
	char *nul = memchr(text, '\0', len);

	memset(&lx, 0, sizeof(lx));
	lx.p = text;
	lx.end = text + len;
	lx.line = 1;
	lx.calls = calls;
	if (nul != NULL) {
		lx.end = nul;
		while (lx.p < lx.end)
			lx.line += *lx.p++ == '\n';
		fault(&lx, true, lx.line, "a NUL byte (expected a text file)");
		return lx.faults;
	}
	while (lx.p < lx.end && lx.faults == 0)
		token(&lx);
	if (lx.faults == 0 && lx.depth > 0)
		unclosed(&lx, len > 0 && text[len - 1] == '\n' ? lx.line - 1 :
		    lx.line);
	return lx.faults;
}
