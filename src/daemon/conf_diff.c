/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf_diff.c - what a reload changed, for the master's log line.
 *
 * Both configurations come as the text libconfuse prints for them (the
 * "effective" member of struct gopro_conf: one "name=value" line per option,
 * defaults filled in, a section's options indented inside "name {" and
 * "}").  Comparing that text rather than the structs means a new option
 * shows up in the reload log without anyone remembering to add it here.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"

#define KEY_MAX 96
#define VALUE_MAX 256

struct option_line {
	char key[KEY_MAX];        /* "workers", "auth.max_attempts" */
	char value[VALUE_MAX];    /* as printed, or "(unset)" */
};

/*
 * Parse the line at *p into o (advancing *p past it); section is the
 * enclosing section's name, updated by "name {" and "}".  Returns 1 for
 * an option, 0 for anything else, -1 at the end of the text.
 */
static int
next_option(const char **p, char *section, size_t seclen,
    struct option_line *o)
{
	const char *line = *p, *end, *eq;
	size_t len;
	bool unset;

	if (*line == '\0')
		return -1;
	end = line + strcspn(line, "\n");
	*p = *end ? end + 1 : end;
	line += strspn(line, " ");
	len = (size_t)(end - line);
	if (len >= 2 && strncmp(end - 2, " {", 2) == 0) {
		snprintf(section, seclen, "%.*s", (int)(len - 2), line);
		return 0;
	}
	if (len == 1 && *line == '}') {
		section[0] = '\0';
		return 0;
	}
	/* An unset option is printed commented out: "# name=". */
	unset = strncmp(line, "# ", 2) == 0;
	if (unset)
		line += 2;
	if ((eq = memchr(line, '=', (size_t)(end - line))) == NULL)
		return 0;
	len = (size_t)(eq - line);
	while (len > 0 && line[len - 1] == ' ')
		len--;
	snprintf(o->key, sizeof(o->key), "%s%s%.*s", section,
	    *section ? "." : "", (int)len, line);
	eq++;
	eq += strspn(eq, " ");
	snprintf(o->value, sizeof(o->value), "%.*s", unset ? 7 :
	    (int)(end - eq), unset ? "(unset)" : eq);
	return 1;
}

/* The value of key in text, or NULL when text has no such option. */
static const char *
find_value(const char *text, const char *key, struct option_line *o)
{
	char section[KEY_MAX] = "";
	int rc;

	while ((rc = next_option(&text, section, sizeof(section), o)) >= 0)
		if (rc == 1 && strcmp(o->key, key) == 0)
			return o->value;
	return NULL;
}

static void
append(char *buf, size_t len, const char *text)
{
	size_t used = strlen(buf);

	if (used < len)
		snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
		    text);
}

void
conf_diff(const char *old_text, const char *new_text, char *buf, size_t len)
{
	char section[KEY_MAX] = "", item[2 * VALUE_MAX + KEY_MAX + 8];
	struct option_line now, was;
	const char *p = new_text, *old;
	int rc;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (old_text == NULL || new_text == NULL)
		return;
	while ((rc = next_option(&p, section, sizeof(section), &now)) >= 0) {
		if (rc != 1)
			continue;
		old = find_value(old_text, now.key, &was);
		if (old != NULL && strcmp(old, now.value) == 0)
			continue;
		snprintf(item, sizeof(item), "%s %s -> %s", now.key,
		    old != NULL ? old : "(none)", now.value);
		append(buf, len, item);
	}
}
