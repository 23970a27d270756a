/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_docs.c - the documentation cannot drift from the code.
 *
 * Every option the configuration parser accepts must be an ".It Ic NAME"
 * entry of man/gopro.conf.5 and a "NAME =" line (commented out or not) of
 * the shipped etc/gopro.conf, and every ".It Ic" entry of the page must be
 * an option the parser accepts.  Every subcommand in the usage text of
 * goproctl must be an ".It Cm NAME" entry of man/goproctl.8, and the other
 * way round.  The option list comes from conf.c's own option table
 * (conf_option_names), the subcommands from running "$GOPROCTL -h", so a
 * new option or subcommand without documentation fails here.
 *
 * Every function that libgopro-tls exports (src/lib/libgopro-tls.map) has
 * an ".Fn NAME" line in the SYNOPSIS of man/libgopro-tls.3, and the page
 * declares no other.
 *
 * The files are found under $TOP_SRCDIR, the programs through $GOPROCTL,
 * both set by "make check".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "conf.h"
#include "gopro/gopro.h"
#include "stats.h"

#define MAX_NAMES 256
#define NAME_MAX_LEN 64

struct names {
	char v[MAX_NAMES][NAME_MAX_LEN];
	size_t n;
};

/* ------------------------------------------------------------ helpers */

static char *
path_in_tree(const char *rel)
{
	const char *top = getenv("TOP_SRCDIR");
	char *p;

	if (top == NULL)
		top = ".";
	p = malloc(strlen(top) + strlen(rel) + 2);
	assert_non_null(p);
	sprintf(p, "%s/%s", top, rel);
	return p;
}

/* The whole stream as a NUL-terminated string. */
static char *
read_stream(FILE *f)
{
	size_t len = 0, cap = 8192, n;
	char *s = malloc(cap);

	assert_non_null(s);
	while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len - 1 == 0) {
			cap *= 2;
			s = realloc(s, cap);
			assert_non_null(s);
		}
	}
	s[len] = '\0';
	return s;
}

static char *
read_tree_file(const char *rel)
{
	char *path = path_in_tree(rel), *s;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		fail_msg("cannot open %s (is TOP_SRCDIR set?)", path);
	s = read_stream(f);
	fclose(f);
	free(path);
	return s;
}

static void
names_add(struct names *names, const char *name, size_t len)
{
	assert_true(names->n < MAX_NAMES);
	assert_true(len > 0 && len < NAME_MAX_LEN);
	memcpy(names->v[names->n], name, len);
	names->v[names->n][len] = '\0';
	names->n++;
}

static bool
names_has(const struct names *names, const char *name)
{
	for (size_t i = 0; i < names->n; i++)
		if (strcmp(names->v[i], name) == 0)
			return true;
	return false;
}

/*
 * The first word after every line that starts with macro (".It Ic ", ".It
 * Cm "): the names a page documents.
 */
static void
page_entries(const char *text, const char *macro, struct names *out)
{
	size_t mlen = strlen(macro), len;
	const char *line = text, *w;

	out->n = 0;
	while (line != NULL && *line != '\0') {
		if (strncmp(line, macro, mlen) == 0) {
			w = line + mlen;
			len = strcspn(w, " \t\n");
			if (len > 0)
				names_add(out, w, len);
		}
		line = strchr(line, '\n');
		if (line != NULL)
			line++;
	}
}

/* Is there a line "[#] name =" (leading blanks allowed) in text? */
static bool
conf_file_mentions(const char *text, const char *name)
{
	size_t nlen = strlen(name);
	const char *line = text, *p;

	while (line != NULL && *line != '\0') {
		p = line + strspn(line, " \t");
		if (*p == '#')
			p += 1 + strspn(p + 1, " \t");
		if (strncmp(p, name, nlen) == 0) {
			p += nlen;
			p += strspn(p, " \t");
			if (*p == '=')
				return true;
		}
		line = strchr(line, '\n');
		if (line != NULL)
			line++;
	}
	return false;
}

/* "auth.required" is written "required" inside the auth section. */
static const char *
base_name(const char *option)
{
	const char *dot = strrchr(option, '.');

	return dot != NULL ? dot + 1 : option;
}

/* The option names, plus the section names ("auth") in sections. */
static void
parser_options(struct names *options, struct names *sections)
{
	const char *const *v = conf_option_names();
	char section[NAME_MAX_LEN];
	const char *dot;
	size_t len;

	options->n = sections->n = 0;
	assert_non_null(v);
	for (; *v != NULL; v++) {
		names_add(options, base_name(*v), strlen(base_name(*v)));
		if ((dot = strchr(*v, '.')) == NULL)
			continue;
		len = (size_t)(dot - *v);
		assert_true(len > 0 && len < sizeof(section));
		memcpy(section, *v, len);
		section[len] = '\0';
		if (!names_has(sections, section))
			names_add(sections, section, len);
	}
}

/*
 * The subcommands in a usage text: in every line that names "goproctl",
 * the first word after it that is not an option or a bracketed group
 * ("[-c file]").
 */
static void
usage_subcommands(const char *text, struct names *out)
{
	const char *line = text, *p, *end;
	int depth;

	out->n = 0;
	while (line != NULL && *line != '\0') {
		end = strchr(line, '\n');
		if (end == NULL)
			end = line + strlen(line);
		p = strstr(line, "goproctl ");
		if (p != NULL && p < end) {
			p += strlen("goproctl ");
			for (;;) {
				p += strspn(p, " ");
				if (*p == '[') {
					for (depth = 0; p < end; p++) {
						depth += (*p == '[') - (*p == ']');
						if (depth == 0)
							break;
					}
					p++;
				} else if (*p == '-') {
					p += strcspn(p, " \n");
				} else
					break;
				if (p >= end)
					break;
			}
			if (p < end && strcspn(p, " \n") > 0 &&
			    !names_has(out, p))
				names_add(out, p, strcspn(p, " \n"));
		}
		line = *end ? end + 1 : NULL;
	}
}

static char *
goproctl_usage(void)
{
	const char *prog = getenv("GOPROCTL");
	char cmd[4096];
	FILE *f;
	char *s;
	int status;

	if (prog == NULL)
		fail_msg("GOPROCTL is not set: run this test with make check");
	snprintf(cmd, sizeof(cmd), "'%s' -h 2>&1", prog);
	f = popen(cmd, "r");
	assert_non_null(f);
	s = read_stream(f);
	status = pclose(f);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("%s -h failed (status %d): %s", prog, status, s);
	return s;
}

/* ------------------------------------------------------------ helper tests */

/* The parsers themselves, on known input: otherwise the real checks below
 * could pass by finding nothing. */
static void
test_page_entries_parser(void **state)
{
	static const char page[] =
	    ".Sh OPTIONS\n.Bl -tag -width Ds\n"
	    ".It Ic listen No = Brq ...\ntext\n"
	    ".It Ic backlog No = Ar number\n"
	    ".It Cm stats Op Fl -json\n"
	    "no .It Ic hidden here\n.It Ic workers\n";
	struct names n;

	(void)state;
	page_entries(page, ".It Ic ", &n);
	assert_int_equal(n.n, 3);
	assert_string_equal(n.v[0], "listen");
	assert_string_equal(n.v[1], "backlog");
	assert_string_equal(n.v[2], "workers");
	page_entries(page, ".It Cm ", &n);
	assert_int_equal(n.n, 1);
	assert_string_equal(n.v[0], "stats");
}

static void
test_conf_file_parser(void **state)
{
	static const char conf[] =
	    "listen = { \"0.0.0.0:8888\" }\n"
	    "  # backlog = 511\n"
	    "#workers=auto\n"
	    "# the user to run as: user = gopro\n"
	    "auth {\n\trequired = false\n}\n"
	    "idle_timeout_not = 5\n";

	(void)state;
	assert_true(conf_file_mentions(conf, "listen"));
	assert_true(conf_file_mentions(conf, "backlog"));
	assert_true(conf_file_mentions(conf, "workers"));
	assert_true(conf_file_mentions(conf, "required"));
	assert_false(conf_file_mentions(conf, "user"));
	assert_false(conf_file_mentions(conf, "idle_timeout"));
	assert_false(conf_file_mentions(conf, "group"));
}

static void
test_usage_parser(void **state)
{
	static const char usage[] =
	    "usage: goproctl [-c file] stats [--json | --prometheus]\n"
	    "       goproctl [-c file] stop [--now] [-t timeout]\n"
	    "       goproctl passwd [--stdin] user\n"
	    "       goproctl -h\n";
	struct names n;

	(void)state;
	usage_subcommands(usage, &n);
	assert_int_equal(n.n, 3);
	assert_string_equal(n.v[0], "stats");
	assert_string_equal(n.v[1], "stop");
	assert_string_equal(n.v[2], "passwd");
}

/* ------------------------------------------------------------ the checks */

static void
test_every_option_in_man_page(void **state)
{
	struct names options, sections, documented;
	char *page = read_tree_file("man/gopro.conf.5");
	size_t missing = 0;

	(void)state;
	parser_options(&options, &sections);
	/* The parser has (at least) the options the brief of issue 3 lists. */
	assert_true(options.n >= 20);
	page_entries(page, ".It Ic ", &documented);
	for (size_t i = 0; i < options.n; i++)
		if (!names_has(&documented, options.v[i])) {
			print_error("gopro.conf.5 has no \".It Ic %s\" entry\n",
			    options.v[i]);
			missing++;
		}
	free(page);
	assert_int_equal(missing, 0);
}

static void
test_every_man_entry_is_an_option(void **state)
{
	struct names options, sections, documented;
	char *page = read_tree_file("man/gopro.conf.5");
	size_t unknown = 0;

	(void)state;
	parser_options(&options, &sections);
	page_entries(page, ".It Ic ", &documented);
	assert_true(documented.n >= options.n);
	for (size_t i = 0; i < documented.n; i++)
		if (!names_has(&options, documented.v[i]) &&
		    !names_has(&sections, documented.v[i])) {
			print_error("gopro.conf.5 documents \"%s\", which the "
			    "parser does not accept\n", documented.v[i]);
			unknown++;
		}
	free(page);
	assert_int_equal(unknown, 0);
}

static void
test_every_option_in_shipped_conf(void **state)
{
	struct names options, sections;
	char *conf = read_tree_file("etc/gopro.conf");
	size_t missing = 0;

	(void)state;
	parser_options(&options, &sections);
	for (size_t i = 0; i < options.n; i++)
		if (!conf_file_mentions(conf, options.v[i])) {
			print_error("etc/gopro.conf has no \"%s =\" line\n",
			    options.v[i]);
			missing++;
		}
	free(conf);
	assert_int_equal(missing, 0);
}

static void
test_every_subcommand_in_man_page(void **state)
{
	struct names commands, documented;
	char *usage = goproctl_usage();
	char *page = read_tree_file("man/goproctl.8");
	size_t missing = 0, unknown = 0;

	(void)state;
	usage_subcommands(usage, &commands);
	assert_true(commands.n >= 8);
	page_entries(page, ".It Cm ", &documented);
	for (size_t i = 0; i < commands.n; i++)
		if (!names_has(&documented, commands.v[i])) {
			print_error("goproctl.8 has no \".It Cm %s\" entry\n",
			    commands.v[i]);
			missing++;
		}
	for (size_t i = 0; i < documented.n; i++)
		if (!names_has(&commands, documented.v[i])) {
			print_error("goproctl.8 documents \"%s\", which is not "
			    "in the usage of goproctl\n", documented.v[i]);
			unknown++;
		}
	free(usage);
	free(page);
	assert_int_equal(missing, 0);
	assert_int_equal(unknown, 0);
}

/* The names of a version script's global: sections ("\tname;" lines). */
static void
map_symbols(const char *text, struct names *out)
{
	const char *line = text;
	size_t len;

	out->n = 0;
	for (; line != NULL && *line != '\0'; line = strchr(line, '\n')) {
		line += *line == '\n';
		if (*line != '\t')
			continue;
		len = strcspn(line + 1, ";\n");
		if (line[1 + len] == ';' && line[1] != '*')
			names_add(out, line + 1, len);
	}
}

static void
test_every_tls_function_in_man_page(void **state)
{
	struct names exported, documented;
	char *map = read_tree_file("src/lib/libgopro-tls.map");
	char *page = read_tree_file("man/libgopro-tls.3"), *synopsis, *end;
	size_t missing = 0, unknown = 0;

	(void)state;
	/* The declarations: the SYNOPSIS, up to the next section. */
	assert_non_null(synopsis = strstr(page, ".Sh SYNOPSIS\n"));
	assert_non_null(end = strstr(synopsis + 1, "\n.Sh "));
	end[1] = '\0';
	map_symbols(map, &exported);
	assert_true(exported.n >= 10);
	page_entries(synopsis, ".Fn ", &documented);
	for (size_t i = 0; i < exported.n; i++)
		if (!names_has(&documented, exported.v[i])) {
			print_error("libgopro-tls.3 has no \".Fn %s\" line\n",
			    exported.v[i]);
			missing++;
		}
	for (size_t i = 0; i < documented.n; i++)
		if (!names_has(&exported, documented.v[i])) {
			print_error("libgopro-tls.3 declares %s, which "
			    "libgopro-tls.map does not export\n",
			    documented.v[i]);
			unknown++;
		}
	free(map);
	free(page);
	assert_int_equal(missing, 0);
	assert_int_equal(unknown, 0);
}

/*
 * Every counter of the stats segment has an entry in the glossary of
 * goproctl(8): ".It Li name , name2" lines after ".Ss Glossary"; an entry
 * that ends in "*" covers the counters it is a prefix of.
 */
static bool
glossary_has(const char *glossary, const char *counter)
{
	const char *line = glossary, *end;

	for (; line != NULL && *line; line = *end ? end + 1 : NULL) {
		end = line + strcspn(line, "\n");
		if (strncmp(line, ".It Li ", 7) != 0)
			continue;
		for (const char *w = line + 7; w < end;) {
			size_t n = strcspn(w, " ,\n");

			if (n > 0 && ((n == strlen(counter) &&
			    strncmp(w, counter, n) == 0) || (w[n - 1] == '*' &&
			    strncmp(w, counter, n - 1) == 0)))
				return true;
			w += n;
			w += strspn(w, " ,");
		}
	}
	return false;
}

static void
test_every_counter_in_glossary(void **state)
{
	static const char *const counters[] = {
#define NAME(name, help) #name,
		STATS_COUNTERS(NAME)
#undef NAME
	};
	char *page = read_tree_file("man/goproctl.8");
	const char *glossary = strstr(page, ".Ss Glossary\n");
	size_t missing = 0;

	(void)state;
	assert_non_null(glossary);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		if (!glossary_has(glossary, counters[i])) {
			print_error("goproctl.8: the Glossary has no \".It Li "
			    "%s\"\n", counters[i]);
			missing++;
		}
	free(page);
	assert_int_equal(missing, 0);
}

/* ------------------------------------------------------------ examples */

static const char *const example_files[] = {
	"etc/gopro.conf", "man/gopro.conf.5", "man/goprod.8", "man/goproctl.8",
	"man/gopro.7", "README.md",
};

/*
 * The value after every "key = " (or "key=") in the files above, quotes
 * and a leading "#" allowed: every example must give the same one, so
 * that a path or a port is the same on every page.
 */
static void
assert_one_value(const char *key, size_t keep)
{
	char first[256] = "", where[64] = "";
	size_t klen = strlen(key), bad = 0;

	for (size_t f = 0; f < sizeof(example_files) / sizeof(*example_files);
	    f++) {
		char *text = read_tree_file(example_files[f]);

		for (const char *p = text; (p = strstr(p, key)) != NULL;
		    p += klen) {
			const char *v = p + klen;
			char val[256];
			size_t n;

			v += strspn(v, " ");
			if (*v != '=')
				continue;
			v += 1 + strspn(v + 1, " \"");
			n = strcspn(v, "\"\n ");
			/* Only the part that must agree (a port: after ':'). */
			if (keep && memchr(v, ':', n) != NULL) {
				const char *c = memchr(v, ':', n);
				n -= (size_t)(c + 1 - v);
				v = c + 1;
			}
			if (n == 0 || n >= sizeof(val))
				continue;
			memcpy(val, v, n);
			val[n] = '\0';
			if (*first == '\0') {
				snprintf(first, sizeof(first), "%s", val);
				snprintf(where, sizeof(where), "%s",
				    example_files[f]);
			} else if (strcmp(first, val) != 0) {
				print_error("%s: %s = %s, but %s has %s\n",
				    example_files[f], key, val, where, first);
				bad++;
			}
		}
		free(text);
	}
	assert_true(*first != '\0');
	assert_int_equal(bad, 0);
}

static void
test_examples_agree(void **state)
{
	(void)state;
	assert_one_value("users_file", 0);
	assert_one_value("metrics_listen", 1);
}

/* The JSON example of goproctl(8) has the layout this build writes. */
static void
test_json_example_layout(void **state)
{
	char *page = read_tree_file("man/goproctl.8"), want[64];

	(void)state;
	snprintf(want, sizeof(want), "\"layout_version\": %u,",
	    STATS_LAYOUT_VERSION);
	if (strstr(page, "\"layout_version\": ") != NULL &&
	    strstr(page, want) == NULL)
		fail_msg("goproctl.8: the JSON example has no %s", want);
	free(page);
}

/* ping's example sizes: a header and the 24-byte body it describes. */
static void
test_ping_sizes(void **state)
{
	char *page = read_tree_file("man/goproctl.8"), want[64];

	(void)state;
	assert_non_null(strstr(page, "HEARTBEAT frames with a 24-byte body"));
	snprintf(want, sizeof(want), "heartbeats of %u bytes",
	    GOPRO_HEADER_SIZE + 24);
	assert_non_null(strstr(page, want));
	snprintf(want, sizeof(want), "\n%u bytes from ", GOPRO_HEADER_SIZE + 24);
	assert_non_null(strstr(page, want));
	free(page);
}

/* Whether the line that starts at line contains text. */
static bool
line_has(const char *line, const char *text)
{
	const char *hit = strstr(line, text);

	return hit != NULL && memchr(line, '\n', (size_t)(hit - line)) == NULL;
}

/* Every option line of goprod -h has its long form, as goprod(8) does. */
static void
test_goprod_long_options(void **state)
{
	const char *prog = getenv("GOPROD");
	char cmd[4096], *out, *page = read_tree_file("man/goprod.8");
	size_t n = 0;
	FILE *f;

	(void)state;
	if (prog == NULL)
		fail_msg("GOPROD is not set: run this test with make check");
	snprintf(cmd, sizeof(cmd), "'%s' -h", prog);
	assert_non_null(f = popen(cmd, "r"));
	out = read_stream(f);
	pclose(f);
	for (const char *l = out; *l; l += strcspn(l, "\n") + (l[strcspn(l,
	    "\n")] != '\0')) {
		const char *entry;
		char man[64];

		if (strncmp(l, "  -", 3) != 0)
			continue;
		n++;
		if (strncmp(l + 4, ", --", 4) != 0)
			fail_msg("goprod -h: no long option in: %.60s", l);
		snprintf(man, sizeof(man), "\n.It Fl %c ", l[3]);
		entry = strstr(page, man);
		if (entry == NULL || !line_has(entry + 1, ", Fl -"))
			fail_msg("goprod.8 has no \".It Fl %c ..., Fl --long\" "
			    "entry", l[3]);
	}
	assert_true(n >= 8);
	free(out);
	free(page);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_entries_parser),
		cmocka_unit_test(test_conf_file_parser),
		cmocka_unit_test(test_usage_parser),
		cmocka_unit_test(test_every_option_in_man_page),
		cmocka_unit_test(test_every_man_entry_is_an_option),
		cmocka_unit_test(test_every_option_in_shipped_conf),
		cmocka_unit_test(test_every_subcommand_in_man_page),
		cmocka_unit_test(test_every_tls_function_in_man_page),
		cmocka_unit_test(test_every_counter_in_glossary),
		cmocka_unit_test(test_examples_agree),
		cmocka_unit_test(test_json_example_layout),
		cmocka_unit_test(test_ping_sizes),
		cmocka_unit_test(test_goprod_long_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
