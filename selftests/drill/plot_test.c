// SPDX-License-Identifier: GPL-2.0-only
/*
 * plot_test: tools/drill-plot turns a fixed sample (a minute of a
 * region-outage drill, two regions, one fault window) into an SVG that
 * xmllint accepts as well-formed XML and that carries the drill's title,
 * the four panel titles, every series' name, the fault's name and its
 * shading in each panel; and refuses bad input with one line and exit 2.
 * Needs gnuplot and xmllint (Debian gnuplot-nox, libxml2-utils): a
 * missing one fails the test, it is a build dependency.  Run from the
 * repository root.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"

#define PLOT	"tools/drill-plot"

FIXTURE(plot) {
	char dir[64], series[128], faults[128], svg[128], err[128];
};

FIXTURE_SETUP(plot)
{
	FILE *f;

	ASSERT_EQ(0, access(PLOT, X_OK));
	ASSERT_EQ(0, access("/usr/bin/gnuplot", X_OK)) TH_LOG("gnuplot-nox is a build dependency");
	ASSERT_EQ(0, access("/usr/bin/xmllint", X_OK)) TH_LOG("libxml2-utils is a build dependency");
	strcpy(self->dir, "/tmp/drill_plot_test.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->series, sizeof(self->series), "%s/series.tsv", self->dir);
	snprintf(self->faults, sizeof(self->faults), "%s/faults.tsv", self->dir);
	snprintf(self->svg, sizeof(self->svg), "%s/drill.svg", self->dir);
	snprintf(self->err, sizeof(self->err), "%s/err", self->dir);
	f = fopen(self->series, "we");
	ASSERT_NE(NULL, f);
	fprintf(f, "t_s\tp50_ms\tp99_ms\tthroughput\tbacklog\tbreaker_east\tbreaker_west\n");
	for (int t = 0; t < 60; t++) {
		int down = t >= 15 && t < 35;

		fprintf(f, "%d\t%.1f\t%d\t%d\t%d\t%d\t0\n", t, 11.5,
			down ? 900 : 40, down ? 5000 : 10000,
			down ? (t - 14) * 5000 : 0, down ? 2 : t == 35);
	}
	ASSERT_EQ(0, fclose(f));
	f = fopen(self->faults, "we");
	ASSERT_NE(NULL, f);
	fprintf(f, "start_s\tend_s\tname\n15\t35\tregion-kill east\n");
	ASSERT_EQ(0, fclose(f));
}

FIXTURE_TEARDOWN(plot)
{
	unlink(self->series);
	unlink(self->faults);
	unlink(self->svg);
	unlink(self->err);
	rmdir(self->dir);
}

/* Run a shell command line; its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
	struct stat st;
	char *buf;
	FILE *f = fopen(path, "re");

	if (!f || fstat(fileno(f), &st) < 0)
		return NULL;
	buf = calloc(1, (size_t)st.st_size + 1);
	if (buf && fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

TEST_F(plot, sample_gives_a_well_formed_svg_with_every_title)
{
	static const char *const want[] = {
		"region-outage (0123456789abcdef)", "Latency (ms)",
		"Throughput (events/s)", "Backlog (events)", "Breaker state",
		"p50", "p99", "delivered", "backlog", "breaker_east",
		"breaker_west", "region-kill east", "SLA 500 ms",
		"seconds since the drill started",
	};
	const char *p;
	char *svg;
	int shaded = 0;

	ASSERT_EQ(0, sh(PLOT " -o %s -f %s -t 'region-outage (0123456789abcdef)' -s 500 %s",
			self->svg, self->faults, self->series));
	ASSERT_EQ(0, sh("xmllint --noout %s", self->svg));
	svg = slurp(self->svg);
	ASSERT_NE(NULL, svg);
	EXPECT_NE(NULL, strstr(svg, "<svg"));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		EXPECT_NE(NULL, strstr(svg, want[i])) TH_LOG("no '%s'", want[i]);
	}
	/* The fault window is shaded in each of the four panels. */
	for (p = svg; (p = strstr(p, "rgb(244, 182, 182)")); p++)
		shaded++;
	EXPECT_EQ(4, shaded);
	free(svg);
}

TEST_F(plot, without_faults_or_sla_still_plots)
{
	ASSERT_EQ(0, sh(PLOT " -o %s %s", self->svg, self->series));
	ASSERT_EQ(0, sh("xmllint --noout %s", self->svg));
}

/* @in with every '@' replaced by @dir. */
static void subst(char *out, size_t len, const char *in, const char *dir)
{
	size_t n = 0;

	for (; *in && n + strlen(dir) + 1 < len; in++) {
		if (*in == '@') {
			strcpy(out + n, dir);
			n += strlen(dir);
		} else {
			out[n++] = *in;
		}
	}
	out[n] = '\0';
}

TEST_F(plot, bad_input_is_one_line_and_exit_2)
{
	static const struct {
		const char *args, *msg;
	} bad[] = {
		{ "@/none.tsv", "drill-plot: -o OUT.svg is required" },
		{ "-o @/x.svg @/none.tsv", "drill-plot: cannot read '@/none.tsv'" },
		{ "-o @/x.svg -s 5x @/series.tsv",
		  "drill-plot: bad value '5x' for -s: not a number" },
		{ "-o @/x.svg @/faults.tsv",
		  "drill-plot: '@/faults.tsv': header must be t_s p50_ms p99_ms throughput backlog breaker_NAME... (tab-separated)" },
		{ "-o @/x.svg -f @/series.tsv @/series.tsv",
		  "drill-plot: '@/series.tsv': line 2 is not 'start_s<TAB>end_s<TAB>name'" },
		{ "-o @/x.svg @/series.tsv extra",
		  "drill-plot: usage: drill-plot -o OUT.svg [-f FAULTS.tsv] [-t TITLE] [-s SLA_MS] SERIES.tsv" },
	};
	char args[512], msg[512], *got;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		subst(args, sizeof(args), bad[i].args, self->dir);
		subst(msg, sizeof(msg) - 1, bad[i].msg, self->dir);
		strcat(msg, "\n");
		EXPECT_EQ(2, sh(PLOT " %s 2>%s", args, self->err)) TH_LOG("%s", args);
		got = slurp(self->err);
		ASSERT_NE(NULL, got);
		EXPECT_STREQ(msg, got);
		free(got);
	}
	/* A row with a missing field. */
	ASSERT_EQ(0, sh("printf '1\\t2\\n' >>%s", self->series));
	EXPECT_EQ(2, sh(PLOT " -o %s/x.svg %s 2>%s", self->dir, self->series,
			self->err));
	got = slurp(self->err);
	ASSERT_NE(NULL, got);
	snprintf(msg, sizeof(msg),
		 "drill-plot: '%s': line 62 has a missing or non-numeric field\n",
		 self->series);
	EXPECT_STREQ(msg, got);
	free(got);
	EXPECT_NE(0, access(self->svg, F_OK));	/* nothing written */
}

TEST_HARNESS_MAIN
