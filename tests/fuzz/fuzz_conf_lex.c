/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_conf_lex.c - libFuzzer target for conf_lex, the first pass over
 * gopro.conf (comments blanked for libconfuse, faults reported).
 *
 * Whatever the input, the pass must keep it the same length, keep every
 * newline where it was and change bytes only into blanks (so libconfuse
 * counts the same lines), and report only lines that exist.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf_lex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int lines;	/* of the current input */

static void
check_line(int line)
{
	if (line < 1 || line > lines)
		abort();
}

static void
on_error(void *arg, int line, const char *msg)
{
	(void)arg;
	check_line(line);
	if (msg == NULL || *msg == '\0')
		abort();
}

static void
on_assign(void *arg, const char *section, const char *name, int line,
    const char *value)
{
	(void)arg;
	(void)section;
	check_line(line);
	if (name == NULL || value == NULL || strlen(value) >= 4096)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct conf_lex_calls calls = { on_error, on_assign, NULL };
	char *text = malloc(size + 1);

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	conf_lex(text, size, &calls);
	for (size_t i = 0; i < size; i++)
		if (text[i] != (char)data[i] &&
		    (text[i] != ' ' || data[i] == '\n'))
			abort();
	free(text);
	return 0;
}
