// SPDX-License-Identifier: GPL-2.0-only
/*
 * drill_scenario: a drill's INI file through libinih, every key described
 * once in keys[] (section, parser, field, bounds, the fault kinds it
 * applies to).  See drill_scenario.h for the contract and the messages.
 *
 * As in config.c, our line reader (read_line) gives libinih one whole line
 * at a time, so a handler error knows its line; it refuses lines libinih
 * would split or truncate, rejects unknown sections at their header and
 * opens the [fault NAME] sections there.  Rules between keys (whole_check)
 * run after the whole file.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

#include "drill_scenario.h"

const char *const drill_failpoints[] = {
	"drain.after_commit",	/* spooled, ring not yet released */
	"drain.before_commit",	/* drained, not yet spooled */
	"ship.after_publish",	/* stored in a region, cursor not moved */
	"ship.before_publish",	/* batch read, not yet sent */
	"ship.after_cursor",	/* cursor moved, not yet trimmed */
	NULL
};

static const char *const kind_names[DRILL_NR_FAULT_KINDS] = {
	[DRILL_REGION_KILL] = "region-kill",
	[DRILL_REGION_PAUSE] = "region-pause",
	[DRILL_REGION_PARTITION] = "region-partition",
	[DRILL_REGION_ONEWAY] = "region-oneway",
	[DRILL_REGION_SLOW] = "region-slow",
	[DRILL_REGION_FLAP] = "region-flap",
	[DRILL_DAEMON_KILL] = "daemon-kill",
	[DRILL_SPOOL_FULL] = "spool-full",
	[DRILL_FAILPOINT] = "failpoint",
};

static const char *const mode_names[] = { "replicate", "failover", NULL };
static const char *const shape_names[] = { "steady", "ramp", "burst", NULL };
static const char *const path_names[] = { "device", "socket", NULL };

const char *drill_fault_kind_name(enum drill_fault_kind k)
{
	return (unsigned int)k < DRILL_NR_FAULT_KINDS ? kind_names[k] : "?";
}

const char *drill_mode_name(enum drill_mode m)
{
	return (unsigned int)m < 2 ? mode_names[m] : "?";
}

const char *drill_shape_name(enum drill_shape s)
{
	return (unsigned int)s < 3 ? shape_names[s] : "?";
}

const char *drill_path_name(enum drill_path p)
{
	return (unsigned int)p < 2 ? path_names[p] : "?";
}

/* Kinds that act on a region (their target is r1..rN). */
#define REGION_KINDS	((1u << DRILL_REGION_KILL) | (1u << DRILL_REGION_PAUSE) | \
			 (1u << DRILL_REGION_PARTITION) | \
			 (1u << DRILL_REGION_ONEWAY) | (1u << DRILL_REGION_SLOW) | \
			 (1u << DRILL_REGION_FLAP))

static bool region_kind(enum drill_fault_kind k)
{
	return REGION_KINDS & (1u << k);
}

/* --- value parsers ---------------------------------------------------- */

enum vtype {
	V_NAME,		/* [A-Za-z0-9_-], 1..size-1 */
	V_TEXT,		/* printable, 0..size-1 */
	V_SECONDS,	/* "1.5" -> 1500 (ms), into a uint32_t */
	V_U32,
	V_SIZE,		/* K/M/G suffixes, into a uint64_t */
	V_ENUM,		/* one of names[], into an enum */
	V_TARGET,	/* "rN" or "evringd", checked against regions later */
	V_FAILPOINT,	/* one of drill_failpoints[] */
};

struct key {
	const char *section;	/* "drill", "traffic", "sla", "fault" */
	const char *name;
	enum vtype type;
	size_t off;		/* into struct drill_scenario, or drill_fault */
	size_t size;
	uint64_t min, max;	/* V_SECONDS in ms */
	const char *const *names;	/* V_ENUM */
	uint32_t kinds;		/* fault keys: the kinds it applies to, 0 all */
};

static int fail(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* @ms as seconds, no trailing zeros: "1.5", "10", "0.001". */
static void fmt_seconds(uint64_t ms, char *buf, size_t len)
{
	if (ms % 1000 == 0)
		snprintf(buf, len, "%llu", (unsigned long long)(ms / 1000));
	else if (ms % 100 == 0)
		snprintf(buf, len, "%llu.%01llu", (unsigned long long)(ms / 1000),
			 (unsigned long long)(ms % 1000 / 100));
	else if (ms % 10 == 0)
		snprintf(buf, len, "%llu.%02llu", (unsigned long long)(ms / 1000),
			 (unsigned long long)(ms % 1000 / 10));
	else
		snprintf(buf, len, "%llu.%03llu", (unsigned long long)(ms / 1000),
			 (unsigned long long)(ms % 1000));
}

/* Digits only, optionally a K/M/G suffix (powers of 1024). */
static int parse_number(const char *v, bool suffixes, uint64_t *out,
			char *why, size_t len)
{
	unsigned long long n;
	char *end;

	if (!isdigit((unsigned char)v[0]))
		return fail(why, len, "not a number");
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno == ERANGE || n > UINT32_MAX * 1024ull * 1024)
		return fail(why, len, "number too large");
	if (*end && suffixes) {
		static const char units[] = "KMG";
		const char *u = strchr(units, toupper((unsigned char)*end));

		if (!u || end[1])
			return fail(why, len,
				    "bad size suffix '%s' (use K, M or G)", end);
		n <<= 10 * (u - units + 1);
		end++;
	}
	if (*end)
		return fail(why, len, "not a number");
	*out = n;
	return 0;
}

/* Seconds with at most three decimals, into milliseconds. */
static int parse_seconds(const char *v, uint64_t *ms, char *why, size_t len)
{
	uint64_t whole = 0, frac = 0;
	const char *p = v;
	int digits = 0;

	if (!isdigit((unsigned char)*p))
		return fail(why, len, "not a number of seconds");
	for (; isdigit((unsigned char)*p); p++) {
		whole = whole * 10 + (uint64_t)(*p - '0');
		if (whole > UINT32_MAX)
			return fail(why, len, "number too large");
	}
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++, digits++) {
			if (digits == 3)
				return fail(why, len,
					    "more than 3 decimals (milliseconds)");
			frac = frac * 10 + (uint64_t)(*p - '0');
		}
		if (!digits)
			return fail(why, len, "not a number of seconds");
		for (int i = digits; i < 3; i++)
			frac *= 10;
	}
	if (*p)
		return fail(why, len, "not a number of seconds");
	*ms = whole * 1000 + frac;
	return 0;
}

static int check_name(const char *v, size_t max, char *why, size_t len)
{
	size_t n = strlen(v);

	if (n == 0 || n > max)
		return fail(why, len, "must be 1..%zu characters", max);
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)v[i]) && v[i] != '_' && v[i] != '-')
			return fail(why, len,
				    "only letters, digits, '_' and '-' allowed");
	return 0;
}

/* Parse @v for @k into @base (the scenario or one of its faults). */
static int parse_value(const struct key *k, const char *v, void *base,
		       char *why, size_t len)
{
	void *f = (char *)base + k->off;
	char lo[32], hi[32];
	uint64_t n = 0;
	int err;

	switch (k->type) {
	case V_NAME:
		err = check_name(v, k->size - 1, why, len);
		if (err)
			return err;
		break;
	case V_TEXT:
		if (strlen(v) >= k->size)
			return fail(why, len, "longer than %zu characters",
				    k->size - 1);
		for (const char *p = v; *p; p++)
			if (!isprint((unsigned char)*p))
				return fail(why, len, "not printable text");
		break;
	case V_TARGET:
		if (strcmp(v, "evringd") &&
		    !(v[0] == 'r' && v[1] >= '1' && v[1] <= '8' && !v[2]))
			return fail(why, len, "expected r1..r8 or 'evringd'");
		break;
	case V_FAILPOINT:
		for (unsigned int i = 0; drill_failpoints[i]; i++)
			if (!strcmp(v, drill_failpoints[i]))
				goto string;
		return fail(why, len,
			    "unknown failpoint (see drill_failpoints in docs/DRILLS.md)");
	case V_ENUM:
		for (unsigned int i = 0; k->names[i]; i++) {
			if (!strcmp(v, k->names[i])) {
				*(int *)f = (int)i;
				return 0;
			}
		}
		if (k->names == kind_names)
			return fail(why, len,
				    "expected region-kill, region-pause, region-partition, region-oneway, region-slow, region-flap, daemon-kill, spool-full or failpoint");
		{
			char choices[128] = "";

			for (unsigned int i = 0; k->names[i]; i++)
				snprintf(choices + strlen(choices),
					 sizeof(choices) - strlen(choices),
					 "%s'%s'", !i ? "" :
					 !k->names[i + 1] ? " or " : ", ",
					 k->names[i]);
			return fail(why, len, "expected %s", choices);
		}
	case V_SECONDS:
		err = parse_seconds(v, &n, why, len);
		if (err)
			return err;
		if (n < k->min || n > k->max) {
			fmt_seconds(k->min, lo, sizeof(lo));
			fmt_seconds(k->max, hi, sizeof(hi));
			return fail(why, len, "out of range (%s..%s s)", lo, hi);
		}
		*(uint32_t *)f = (uint32_t)n;
		return 0;
	case V_U32:
	case V_SIZE:
		err = parse_number(v, k->type == V_SIZE, &n, why, len);
		if (err)
			return err;
		if (n < k->min || n > k->max) {
			snprintf(lo, sizeof(lo), "%llu", (unsigned long long)k->min);
			snprintf(hi, sizeof(hi), "%llu", (unsigned long long)k->max);
			if (k->type == V_SIZE) {
				snprintf(lo, sizeof(lo), "%lluM",
					 (unsigned long long)(k->min >> 20));
				snprintf(hi, sizeof(hi), "%lluG",
					 (unsigned long long)(k->max >> 30));
			}
			return fail(why, len, "out of range (%s..%s)", lo, hi);
		}
		if (k->size == sizeof(uint32_t))
			*(uint32_t *)f = (uint32_t)n;
		else
			*(uint64_t *)f = n;
		return 0;
	}
string:
	memset(f, 0, k->size);
	memcpy(f, v, strlen(v));
	return 0;
}

/* --- the keys --------------------------------------------------------- */

#define SKEY(sec, nm, t, fld) \
	.section = sec, .name = nm, .type = t, \
	.off = offsetof(struct drill_scenario, fld), \
	.size = sizeof(((struct drill_scenario *)0)->fld)
#define FKEY(nm, t, fld) \
	.section = "fault", .name = nm, .type = t, \
	.off = offsetof(struct drill_fault, fld), \
	.size = sizeof(((struct drill_fault *)0)->fld)
#define RANGE(lo, hi)	.min = (lo), .max = (hi)
#define KIND(k)		(1u << DRILL_##k)

static const struct key keys[] = {
	{ SKEY("drill", "name", V_NAME, name) },
	{ SKEY("drill", "description", V_TEXT, description) },
	{ SKEY("drill", "duration_s", V_SECONDS, duration_ms),
	  RANGE(1000, DRILL_DURATION_MS_MAX) },
	{ SKEY("drill", "check_duration_s", V_SECONDS, check_duration_ms),
	  RANGE(1000, DRILL_DURATION_MS_MAX) },
	{ SKEY("drill", "mode", V_ENUM, mode), .names = mode_names },
	{ SKEY("drill", "regions", V_U32, regions), RANGE(1, DRILL_REGIONS_MAX) },
	{ SKEY("traffic", "rate", V_U32, traffic.rate), RANGE(1, DRILL_RATE_MAX) },
	{ SKEY("traffic", "size", V_U32, traffic.size),
	  RANGE(DRILL_CANARY_SIZE_MIN, DRILL_SIZE_MAX) },
	{ SKEY("traffic", "writers", V_U32, traffic.writers),
	  RANGE(1, DRILL_WRITERS_MAX) },
	{ SKEY("traffic", "shape", V_ENUM, traffic.shape), .names = shape_names },
	{ SKEY("traffic", "rate_from", V_U32, traffic.rate_from),
	  RANGE(0, DRILL_RATE_MAX) },
	{ SKEY("traffic", "burst_s", V_SECONDS, traffic.burst_ms),
	  RANGE(1, DRILL_DURATION_MS_MAX) },
	{ SKEY("traffic", "burst_every_s", V_SECONDS, traffic.burst_every_ms),
	  RANGE(1, DRILL_DURATION_MS_MAX) },
	{ SKEY("traffic", "path", V_ENUM, traffic.path), .names = path_names },
	{ SKEY("sla", "latency_ms", V_U32, sla.latency_ms),
	  RANGE(1, DRILL_SLA_LATENCY_MS_MAX) },
	{ SKEY("sla", "abort_after_s", V_SECONDS, sla.abort_after_ms),
	  RANGE(0, DRILL_DURATION_MS_MAX) },
	{ SKEY("sla", "recover_within_s", V_SECONDS, sla.recover_within_ms),
	  RANGE(1, 3600000) },
	{ FKEY("kind", V_ENUM, kind), .names = kind_names },
	{ FKEY("at_s", V_SECONDS, at_ms), RANGE(0, DRILL_DURATION_MS_MAX) },
	{ FKEY("for_s", V_SECONDS, for_ms), RANGE(1, DRILL_DURATION_MS_MAX) },
	{ FKEY("target", V_TARGET, target) },
	{ FKEY("latency_ms", V_U32, latency_ms),
	  RANGE(0, DRILL_SLOW_LATENCY_MS_MAX), .kinds = KIND(REGION_SLOW) },
	{ FKEY("jitter_ms", V_U32, jitter_ms),
	  RANGE(0, DRILL_SLOW_LATENCY_MS_MAX), .kinds = KIND(REGION_SLOW) },
	{ FKEY("loss_pct", V_U32, loss_pct), RANGE(0, 100),
	  .kinds = KIND(REGION_SLOW) },
	{ FKEY("rate_kbit", V_U32, rate_kbit), RANGE(0, DRILL_RATE_KBIT_MAX),
	  .kinds = KIND(REGION_SLOW) },
	{ FKEY("period_s", V_SECONDS, period_ms), RANGE(2, DRILL_DURATION_MS_MAX),
	  .kinds = KIND(REGION_FLAP) },
	{ FKEY("every_s", V_SECONDS, every_ms), RANGE(1, DRILL_DURATION_MS_MAX),
	  .kinds = KIND(DAEMON_KILL) },
	{ FKEY("fs_size", V_SIZE, fs_size),
	  RANGE(DRILL_FS_SIZE_MIN, DRILL_FS_SIZE_MAX), .kinds = KIND(SPOOL_FULL) },
	{ FKEY("name", V_FAILPOINT, failpoint), .kinds = KIND(FAILPOINT) },
};

#define NR_KEYS (sizeof(keys) / sizeof(keys[0]))

static const struct key *find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < NR_KEYS; i++)
		if (!strcmp(keys[i].section, section) &&
		    !strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static size_t key_index(const char *section, const char *name)
{
	return (size_t)(find_key(section, name) - keys);
}

static void defaults(struct drill_scenario *s)
{
	memset(s, 0, sizeof(*s));
	s->mode = DRILL_REPLICATE;
	s->regions = 2;
	s->traffic.rate = 1000;
	s->traffic.size = 128;
	s->traffic.writers = 1;
	s->traffic.shape = DRILL_STEADY;
	s->traffic.path = DRILL_PATH_DEVICE;
	s->sla.latency_ms = 1000;
	s->sla.abort_after_ms = 30000;
	s->sla.recover_within_ms = 5000;
}

/* --- the file --------------------------------------------------------- */

struct load {
	struct drill_scenario s;
	const char *path;
	FILE *f;
	int lineno;			/* of the line inih is handling */
	int set_on[NR_KEYS];		/* line that set each key, 0: none */
	int fault_set_on[DRILL_FAULTS_MAX][NR_KEYS];
	int fault;			/* index of the [fault] we are in, -1 */
	bool after_key;			/* an indented line continues a key */
	char *line;
	size_t linecap;
	int err;			/* first error, 0: none */
	char *msg;
	size_t msglen;
};

/* The first error wins: "PATH:LINE: ..." (LINE 0: "PATH: ..."). */
static int at_fail(struct load *ld, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int at_fail(struct load *ld, int line, const char *fmt, ...)
{
	int n = 0;
	va_list ap;

	if (ld->err)
		return ld->err;
	ld->err = -EINVAL;
	if (ld->msglen)
		n = line ? snprintf(ld->msg, ld->msglen, "%s:%d: ", ld->path,
				    line) :
			   snprintf(ld->msg, ld->msglen, "%s: ", ld->path);
	if (n >= 0 && (size_t)n < ld->msglen) {
		va_start(ap, fmt);
		vsnprintf(ld->msg + n, ld->msglen - n, fmt, ap);
		va_end(ap);
	}
	return ld->err;
}

static int open_fault(struct load *ld, const char *name)
{
	struct drill_fault *f;
	char why[128];

	if (check_name(name, DRILL_NAME_MAX, why, sizeof(why)) < 0)
		return at_fail(ld, ld->lineno, "bad fault name '%s': %s", name,
			       why);
	for (unsigned int i = 0; i < ld->s.nr_faults; i++)
		if (!strcmp(ld->s.fault[i].name, name))
			return at_fail(ld, ld->lineno,
				       "duplicate fault '%s' (first defined on line %d)",
				       name, ld->s.fault[i].line);
	if (ld->s.nr_faults == DRILL_FAULTS_MAX)
		return at_fail(ld, ld->lineno, "too many faults (max %d)",
			       DRILL_FAULTS_MAX);
	ld->fault = (int)ld->s.nr_faults++;
	f = &ld->s.fault[ld->fault];
	strcpy(f->name, name);
	f->kind = DRILL_NR_FAULT_KINDS;	/* "no kind" until set */
	f->fs_size = 64ull << 20;
	f->line = ld->lineno;
	return 0;
}

/*
 * inih's reader: one whole line per call, refused when it would not fit
 * inih's buffer of @num bytes or holds a NUL; section headers checked.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct load *ld = stream;
	const char *p, *end;
	ssize_t n;

	if (ld->err)
		return NULL;
	n = getline(&ld->line, &ld->linecap, ld->f);
	if (n < 0) {
		if (ferror(ld->f))
			at_fail(ld, ld->lineno + 1, "read error: %s",
				strerror(errno ? errno : EIO));
		return NULL;
	}
	ld->lineno++;
	if (n > num - 1) {
		at_fail(ld, ld->lineno, "line too long (max %d characters)",
			num - 2);
		return NULL;
	}
	if (memchr(ld->line, '\0', n)) {
		at_fail(ld, ld->lineno, "NUL byte in line");
		return NULL;
	}
	for (p = ld->line; *p == ' ' || *p == '\t'; p++)
		;
	end = *p == '[' && !(ld->after_key && p > ld->line) ?
		      strchr(p, ']') : NULL;
	if (end) {
		char name[256];

		snprintf(name, sizeof(name), "%.*s", (int)(end - p - 1), p + 1);
		ld->after_key = false;
		ld->fault = -1;
		if (!strcmp(name, "fault") || !strncmp(name, "fault ", 6)) {
			if (open_fault(ld, name + 5 + strspn(name + 5, " \t")))
				return NULL;
		} else if (strcmp(name, "drill") && strcmp(name, "traffic") &&
			   strcmp(name, "sla")) {
			at_fail(ld, ld->lineno, "unknown section [%s]", name);
			return NULL;
		}
	}
	memcpy(str, ld->line, n + 1);
	return str;
}

static int on_key(void *user, const char *section, const char *name,
		  const char *value)
{
	struct load *ld = user;
	char why[256], sect[DRILL_NAME_MAX + 8], dotted[DRILL_NAME_MAX + 8];
	const struct key *k;
	void *base = &ld->s;
	int *set_on;

	ld->after_key = true;
	if (!section[0]) {
		at_fail(ld, ld->lineno, "key '%s' outside a [section]", name);
		return 0;
	}
	if (ld->fault >= 0) {	/* inih's section may be cut short */
		const char *fname = ld->s.fault[ld->fault].name;

		snprintf(sect, sizeof(sect), "fault %s", fname);
		snprintf(dotted, sizeof(dotted), "fault.%s", fname);
		section = "fault";
		base = &ld->s.fault[ld->fault];
	} else {
		snprintf(sect, sizeof(sect), "%s", section);
		snprintf(dotted, sizeof(dotted), "%s", section);
	}
	k = find_key(section, name);
	if (!k) {
		at_fail(ld, ld->lineno, "unknown key '%s' in [%s]", name, sect);
		return 0;
	}
	set_on = ld->fault >= 0 ? &ld->fault_set_on[ld->fault][k - keys] :
				  &ld->set_on[k - keys];
	if (*set_on) {
		at_fail(ld, ld->lineno,
			"duplicate key '%s' in [%s] (first set on line %d)",
			name, sect, *set_on);
		return 0;
	}
	*set_on = ld->lineno;
	if (parse_value(k, value, base, why, sizeof(why)) < 0) {
		at_fail(ld, ld->lineno, "bad value '%s' for %s.%s: %s", value,
			dotted, name, why);
		return 0;
	}
	return 1;
}

/* --- rules between keys ----------------------------------------------- */

static int check_drill(struct load *ld)
{
	struct drill_scenario *s = &ld->s;
	struct drill_traffic *t = &s->traffic;
	char a[32], b[32];
	int line;

	if (!ld->set_on[key_index("drill", "name")])
		return at_fail(ld, 0, "drill.name is required");
	if (!ld->set_on[key_index("drill", "duration_s")])
		return at_fail(ld, 0, "drill.duration_s is required");
	if (!s->nr_faults)
		return at_fail(ld, 0,
			       "no [fault NAME] section (a drill injects at least one fault)");
	if (!ld->set_on[key_index("drill", "check_duration_s")])
		s->check_duration_ms = s->duration_ms < 10000 ? s->duration_ms :
								10000;
	if (s->check_duration_ms > s->duration_ms) {
		fmt_seconds(s->check_duration_ms, a, sizeof(a));
		fmt_seconds(s->duration_ms, b, sizeof(b));
		return at_fail(ld, 0,
			       "drill.check_duration_s (%s) is longer than drill.duration_s (%s)",
			       a, b);
	}
	if (s->mode == DRILL_FAILOVER && s->regions < 2)
		return at_fail(ld, 0,
			       "drill.mode failover needs at least 2 regions");

	line = ld->set_on[key_index("traffic", "rate_from")];
	if (line && t->shape != DRILL_RAMP)
		return at_fail(ld, line,
			       "traffic.rate_from applies to shape ramp only");
	if (t->shape == DRILL_RAMP && !line)
		return at_fail(ld, 0, "traffic.shape ramp needs traffic.rate_from");
	for (int i = 0; i < 2; i++) {
		const char *k = i ? "burst_every_s" : "burst_s";

		line = ld->set_on[key_index("traffic", k)];
		if (line && t->shape != DRILL_BURST)
			return at_fail(ld, line,
				       "traffic.%s applies to shape burst only", k);
	}
	if (t->shape == DRILL_BURST && (!t->burst_ms || !t->burst_every_ms))
		return at_fail(ld, 0,
			       "traffic.shape burst needs traffic.burst_s and traffic.burst_every_s");
	if (t->shape == DRILL_BURST && t->burst_ms >= t->burst_every_ms) {
		fmt_seconds(t->burst_ms, a, sizeof(a));
		fmt_seconds(t->burst_every_ms, b, sizeof(b));
		return at_fail(ld, 0,
			       "traffic.burst_s (%s) must be shorter than traffic.burst_every_s (%s)",
			       a, b);
	}
	return 0;
}

/* Resolve f->target into target_region, checking it suits the kind. */
static int check_target(struct load *ld, struct drill_fault *f, int line)
{
	const char *kn = kind_names[f->kind];

	if (!strcmp(f->target, "evringd")) {
		if (region_kind(f->kind))
			return at_fail(ld, line,
				       "fault '%s': kind '%s' targets a region (r1..r%u), not 'evringd'",
				       f->name, kn, ld->s.regions);
		f->target_region = -1;
		return 0;
	}
	if (!region_kind(f->kind))
		return at_fail(ld, line,
			       "fault '%s': kind '%s' targets evringd, not '%s'",
			       f->name, kn, f->target);
	f->target_region = f->target[1] - '1';
	if ((unsigned int)f->target_region >= ld->s.regions)
		return at_fail(ld, line,
			       "fault '%s': unknown target '%s' (regions are r1..r%u, or evringd)",
			       f->name, f->target, ld->s.regions);
	return 0;
}

static int check_fault_kind(struct load *ld, struct drill_fault *f,
			    const int *set_on)
{
	int line = f->line;
	char a[32], b[32];

	switch (f->kind) {
	case DRILL_REGION_SLOW:
		if (!set_on[key_index("fault", "latency_ms")] &&
		    !set_on[key_index("fault", "loss_pct")] &&
		    !set_on[key_index("fault", "rate_kbit")])
			return at_fail(ld, line,
				       "fault '%s': region-slow needs latency_ms, loss_pct or rate_kbit",
				       f->name);
		if (f->jitter_ms > f->latency_ms)
			return at_fail(ld, set_on[key_index("fault", "jitter_ms")],
				       "fault '%s': jitter_ms (%u) is greater than latency_ms (%u)",
				       f->name, f->jitter_ms, f->latency_ms);
		break;
	case DRILL_REGION_FLAP:
		if (!f->period_ms)
			return at_fail(ld, line, "fault '%s': region-flap needs period_s",
				       f->name);
		if (f->period_ms >= f->for_ms) {
			fmt_seconds(f->period_ms, a, sizeof(a));
			fmt_seconds(f->for_ms, b, sizeof(b));
			return at_fail(ld, set_on[key_index("fault", "period_s")],
				       "fault '%s': period_s (%s s) must be shorter than for_s (%s s)",
				       f->name, a, b);
		}
		break;
	case DRILL_DAEMON_KILL:
		if (!f->every_ms)
			return at_fail(ld, line, "fault '%s': daemon-kill needs every_s",
				       f->name);
		if (f->every_ms > f->for_ms) {
			fmt_seconds(f->every_ms, a, sizeof(a));
			fmt_seconds(f->for_ms, b, sizeof(b));
			return at_fail(ld, set_on[key_index("fault", "every_s")],
				       "fault '%s': every_s (%s s) is longer than for_s (%s s)",
				       f->name, a, b);
		}
		break;
	case DRILL_FAILPOINT:
		if (!f->failpoint[0])
			return at_fail(ld, line, "fault '%s': failpoint needs name",
				       f->name);
		break;
	default:
		break;
	}
	return 0;
}

static int check_fault(struct load *ld, unsigned int i)
{
	struct drill_fault *f = &ld->s.fault[i];
	const int *set_on = ld->fault_set_on[i];
	char a[32], b[32];
	int err;

	if (f->kind == DRILL_NR_FAULT_KINDS)
		return at_fail(ld, f->line, "fault '%s' has no kind", f->name);
	if (!set_on[key_index("fault", "at_s")])
		return at_fail(ld, f->line, "fault '%s' has no at_s", f->name);
	if (!set_on[key_index("fault", "for_s")])
		return at_fail(ld, f->line, "fault '%s' has no for_s", f->name);
	for (size_t k = 0; k < NR_KEYS; k++)
		if (set_on[k] && keys[k].kinds && !(keys[k].kinds & (1u << f->kind)))
			return at_fail(ld, set_on[k],
				       "fault '%s': key '%s' does not apply to kind '%s'",
				       f->name, keys[k].name, kind_names[f->kind]);
	if (!f->target[0]) {
		if (region_kind(f->kind))
			return at_fail(ld, f->line, "fault '%s' has no target",
				       f->name);
		strcpy(f->target, "evringd");
	}
	err = check_target(ld, f, set_on[key_index("fault", "target")] ?: f->line);
	if (err)
		return err;
	if ((uint64_t)f->at_ms + f->for_ms > ld->s.duration_ms) {
		fmt_seconds((uint64_t)f->at_ms + f->for_ms, a, sizeof(a));
		fmt_seconds(ld->s.duration_ms, b, sizeof(b));
		return at_fail(ld, set_on[key_index("fault", "for_s")],
			       "fault '%s' ends at %s s, after drill.duration_s (%s s)",
			       f->name, a, b);
	}
	err = check_fault_kind(ld, f, set_on);
	if (err)
		return err;
	for (unsigned int j = 0; j < i; j++) {
		const struct drill_fault *g = &ld->s.fault[j];

		if (!strcmp(g->target, f->target) &&
		    f->at_ms < g->at_ms + g->for_ms &&
		    g->at_ms < f->at_ms + f->for_ms)
			return at_fail(ld, f->line,
				       "fault '%s' overlaps fault '%s' on target '%s'",
				       f->name, g->name, f->target);
	}
	return 0;
}

static int whole_check(struct load *ld)
{
	int err = check_drill(ld);

	for (unsigned int i = 0; !err && i < ld->s.nr_faults; i++)
		err = check_fault(ld, i);
	return err;
}

int drill_scenario_load(struct drill_scenario *s, const char *path,
			char *err, size_t errlen)
{
	struct load *ld;
	struct stat st;
	int ret;

	ld = calloc(1, sizeof(*ld));
	if (!ld)
		return -ENOMEM;
	defaults(&ld->s);
	ld->fault = -1;
	ld->path = path;
	ld->msg = err;
	ld->msglen = errlen;
	ld->f = fopen(path, "re");
	if (!ld->f || (fstat(fileno(ld->f), &st) == 0 && S_ISDIR(st.st_mode))) {
		ret = ld->f ? -EISDIR : -errno;
		snprintf(err, errlen, "cannot open '%s': %s", path,
			 strerror(-ret));
		goto out;
	}
	ret = ini_parse_stream(read_line, ld, on_key, ld);
	if (!ld->err && ret > 0)
		at_fail(ld, ret,
			"syntax error (expected 'key = value' or '[section]')");
	else if (!ld->err && ret < 0)
		ld->err = -ENOMEM;
	if (!ld->err)
		whole_check(ld);
	ret = ld->err;
	if (!ret)
		*s = ld->s;
out:
	if (ld->f)
		fclose(ld->f);
	free(ld->line);
	free(ld);
	return ret;
}

/* --- using a scenario ------------------------------------------------- */

static uint32_t scale(uint32_t ms, uint32_t num, uint32_t den)
{
	uint64_t v;

	if (!ms)
		return 0;
	v = ((uint64_t)ms * num + den / 2) / den;
	return v ? (uint32_t)v : 1;
}

void drill_scenario_shorten(const struct drill_scenario *in,
			    struct drill_scenario *out)
{
	uint32_t num = in->check_duration_ms, den = in->duration_ms;

	if (out != in)
		*out = *in;
	if (num == den)
		return;
	out->traffic.burst_ms = scale(in->traffic.burst_ms, num, den);
	out->traffic.burst_every_ms = scale(in->traffic.burst_every_ms, num, den);
	if (out->traffic.burst_ms >= out->traffic.burst_every_ms &&
	    out->traffic.burst_every_ms > 1)
		out->traffic.burst_ms = out->traffic.burst_every_ms - 1;
	for (unsigned int i = 0; i < in->nr_faults; i++) {
		struct drill_fault *f = &out->fault[i];
		uint32_t end = scale(f->at_ms + f->for_ms, num, den);

		f->at_ms = f->at_ms ? scale(f->at_ms, num, den) : 0;
		f->for_ms = end > f->at_ms ? end - f->at_ms : 1;
		f->period_ms = scale(f->period_ms, num, den);
		f->every_ms = scale(f->every_ms, num, den);
	}
	out->duration_ms = num;
}

uint32_t drill_traffic_rate(const struct drill_traffic *t, uint64_t t_ms,
			    uint64_t duration_ms)
{
	switch (t->shape) {
	case DRILL_RAMP:
		if (!duration_ms || t_ms >= duration_ms)
			return t->rate;
		return (uint32_t)(t->rate_from +
				  ((int64_t)t->rate - (int64_t)t->rate_from) *
					  (int64_t)t_ms / (int64_t)duration_ms);
	case DRILL_BURST:
		if (t->burst_every_ms && t_ms % t->burst_every_ms < t->burst_ms)
			return t->rate * 10;
		return t->rate;
	case DRILL_STEADY:
	default:
		return t->rate;
	}
}
