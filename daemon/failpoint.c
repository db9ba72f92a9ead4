// SPDX-License-Identifier: GPL-2.0-only
/*
 * failpoint: see failpoint.h.  The state is process-wide: one action and
 * one hit count per failpoint, and the flag the inline hook tests.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "failpoint.h"
#include "log.h"

#define ACTIONS "expected off, crash, pause:MS or error, optionally followed by @N"

bool failpoints_armed;

static const char *const names[FP_NR] = {
	[FP_DRAIN_BEFORE_COMMIT] = "drain.before_commit",
	[FP_DRAIN_AFTER_COMMIT] = "drain.after_commit",
	[FP_SHIP_BEFORE_PUBLISH] = "ship.before_publish",
	[FP_SHIP_AFTER_PUBLISH] = "ship.after_publish",
	[FP_SHIP_AFTER_CURSOR] = "ship.after_cursor",
};

static struct {
	struct failpoint_action a;
	uint64_t hits;			/* under a, since it was armed */
	bool told;			/* a pause was logged once */
} fps[FP_NR] = {
	[0 ... FP_NR - 1] = { .a = { .kind = FAILPOINT_OFF, .after = 1 } },
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

const char *failpoint_name(enum failpoint_id id)
{
	return (unsigned int)id < FP_NR ? names[id] : NULL;
}

int failpoint_lookup(const char *name, enum failpoint_id *out)
{
	for (unsigned int i = 0; i < FP_NR; i++) {
		if (!strcmp(name, names[i])) {
			*out = i;
			return 0;
		}
	}
	return -ENOENT;
}

static void rearm_flag(void)
{
	bool any = false;

	for (unsigned int i = 0; i < FP_NR; i++)
		any |= fps[i].a.kind != FAILPOINT_OFF;
	__atomic_store_n(&failpoints_armed, any, __ATOMIC_RELAXED);
}

static void pause_ms(uint32_t ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000L,
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * A failpoint firing is logged (it explains a daemon that died or stalled
 * in a drill's log), a pause only the first time in an arming: a pause on
 * every commit would flood the log.
 */
int failpoint_hit(enum failpoint_id id)
{
	unsigned long long n;
	int saved = errno;

	if ((unsigned int)id >= FP_NR || fps[id].a.kind == FAILPOINT_OFF)
		return 0;
	n = ++fps[id].hits;
	if (n < fps[id].a.after)
		return 0;
	switch (fps[id].a.kind) {
	case FAILPOINT_CRASH:
		log_warn("failpoint %s: crash (hit %llu)", names[id], n);
		fflush(stderr);
		raise(SIGKILL);
		abort();	/* not reached */
	case FAILPOINT_PAUSE:
		if (!fps[id].told)
			log_warn("failpoint %s: pausing %u ms (hit %llu; further pauses not logged)",
				 names[id], fps[id].a.pause_ms, n);
		fps[id].told = true;
		pause_ms(fps[id].a.pause_ms);
		errno = saved;
		return 0;
	case FAILPOINT_ERROR:
		log_warn("failpoint %s: failing the spool call with EIO (hit %llu)",
			 names[id], n);
		return -EIO;
	case FAILPOINT_OFF:
		break;
	}
	return 0;
}

/* A decimal number in [min, max], digits only. */
static bool parse_num(const char *s, unsigned long min, unsigned long max,
		      uint32_t *out)
{
	unsigned long v;
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

int failpoint_parse(enum failpoint_id id, const char *text,
		    struct failpoint_action *out, char *why, size_t len)
{
	struct failpoint_action a = { .after = 1 };
	const char *name = failpoint_name(id);
	char base[FAILPOINT_ACTION_MAX];
	const char *at;
	size_t blen;

	if (!name)
		return fail(why, len, "no failpoint %d", (int)id);
	if (!text || !text[0])
		return fail(why, len, "failpoint '%s': empty action (" ACTIONS ")",
			    name);
	at = strchr(text, '@');
	blen = at ? (size_t)(at - text) : strlen(text);
	if (blen >= sizeof(base))
		return fail(why, len, "failpoint '%s': unknown action '%.64s' (" ACTIONS ")",
			    name, text);
	memcpy(base, text, blen);
	base[blen] = '\0';

	if (!strcmp(base, "off")) {
		a.kind = FAILPOINT_OFF;
	} else if (!strcmp(base, "crash")) {
		a.kind = FAILPOINT_CRASH;
	} else if (!strcmp(base, "error")) {
		if (id != FP_DRAIN_BEFORE_COMMIT)
			return fail(why, len, "failpoint '%s': action 'error' applies only to drain.before_commit (the spool commit); use crash or pause",
				    name);
		a.kind = FAILPOINT_ERROR;
	} else if (!strcmp(base, "pause")) {
		return fail(why, len, "failpoint '%s': pause needs a duration: 'pause:MS', MS 1..%d",
			    name, FAILPOINT_PAUSE_MAX);
	} else if (!strncmp(base, "pause:", 6)) {
		if (!parse_num(base + 6, 1, FAILPOINT_PAUSE_MAX, &a.pause_ms))
			return fail(why, len, "failpoint '%s': bad pause '%.64s' (1..%d ms)",
				    name, base + 6, FAILPOINT_PAUSE_MAX);
		a.kind = FAILPOINT_PAUSE;
	} else {
		return fail(why, len, "failpoint '%s': unknown action '%.64s' (" ACTIONS ")",
			    name, base);
	}
	if (at) {
		if (a.kind == FAILPOINT_OFF)
			return fail(why, len, "failpoint '%s': 'off' takes no count",
				    name);
		if (!parse_num(at + 1, 1, FAILPOINT_AFTER_MAX, &a.after))
			return fail(why, len, "failpoint '%s': bad count '%.64s' (1..%u: act from the Nth hit on)",
				    name, at + 1, FAILPOINT_AFTER_MAX);
	}
	*out = a;
	return 0;
}

void failpoint_format(const struct failpoint_action *a, char *buf, size_t len)
{
	char count[16] = "";

	if (a->after > 1)
		snprintf(count, sizeof(count), "@%u", a->after);
	switch (a->kind) {
	case FAILPOINT_CRASH:
		snprintf(buf, len, "crash%s", count);
		break;
	case FAILPOINT_PAUSE:
		snprintf(buf, len, "pause:%u%s", a->pause_ms, count);
		break;
	case FAILPOINT_ERROR:
		snprintf(buf, len, "error%s", count);
		break;
	case FAILPOINT_OFF:
	default:
		snprintf(buf, len, "off");
		break;
	}
}

static uint64_t arm(enum failpoint_id id, const struct failpoint_action *a)
{
	uint64_t hits = fps[id].hits;

	fps[id].a = *a;
	fps[id].hits = 0;
	fps[id].told = false;
	rearm_flag();
	return hits;
}

static int lookup(const char *name, enum failpoint_id *id, char *why,
		  size_t len)
{
	if (failpoint_lookup(name, id))
		return fail(why, len, "unknown failpoint '%.64s' (expected drain.before_commit, drain.after_commit, ship.before_publish, ship.after_publish or ship.after_cursor)",
			    name);
	return 0;
}

int failpoint_set(const char *name, const char *action, uint64_t *hits,
		  char *why, size_t len)
{
	struct failpoint_action a;
	enum failpoint_id id = FP_NR;
	int ret;

	ret = lookup(name, &id, why, len);
	if (!ret)
		ret = failpoint_parse(id, action, &a, why, len);
	if (ret)
		return ret;
	*hits = arm(id, &a);
	return 0;
}

int failpoint_set_spec(const char *spec, char *why, size_t len)
{
	struct failpoint_action a[FP_NR];
	bool given[FP_NR] = { false };
	char buf[FAILPOINT_SPEC_MAX + 1], *item, *next;
	int ret;

	if (!spec || !spec[0])
		return 0;
	if (strlen(spec) > FAILPOINT_SPEC_MAX)
		return fail(why, len, "longer than %d bytes", FAILPOINT_SPEC_MAX);
	strcpy(buf, spec);
	for (item = buf; item; item = next) {
		enum failpoint_id id = FP_NR;
		char *eq;

		next = strchr(item, ',');
		if (next)
			*next++ = '\0';
		if (!item[0])
			return fail(why, len, "empty entry (expected name=action[,name=action...])");
		eq = strchr(item, '=');
		if (!eq)
			return fail(why, len, "'%.64s' is not name=action", item);
		*eq = '\0';
		ret = lookup(item, &id, why, len);
		if (ret)
			return ret;
		if (given[id])
			return fail(why, len, "failpoint '%s' given twice",
				    names[id]);
		ret = failpoint_parse(id, eq + 1, &a[id], why, len);
		if (ret)
			return ret;
		given[id] = true;
	}
	for (unsigned int i = 0; i < FP_NR; i++)
		if (given[i])
			arm(i, &a[i]);
	return 0;
}

void failpoint_get(enum failpoint_id id, struct failpoint_action *a,
		   uint64_t *hits)
{
	*a = fps[id].a;
	*hits = fps[id].hits;
}

void failpoint_reset(void)
{
	static const struct failpoint_action off = { .after = 1 };

	for (unsigned int i = 0; i < FP_NR; i++)
		arm(i, &off);
}
