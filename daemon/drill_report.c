// SPDX-License-Identifier: GPL-2.0-only
/*
 * drill_report: figures, verdict, report.json, the TSVs and the plot of a
 * drill.  See drill_report.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "drill_report.h"

static void __attribute__((format(printf, 3, 4)))
sfmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* Append to a bounded string. */
static void __attribute__((format(printf, 3, 4)))
sadd(char *buf, size_t len, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, len - n, fmt, ap);
	va_end(ap);
}

/* --- samples ------------------------------------------------------------- */

int drill_series_add(struct drill_series *s, const struct drill_sample *x)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		struct drill_sample *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = *x;
	return 0;
}

void drill_series_free(struct drill_series *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

uint64_t drill_sample_backlog(const struct drill_sample *x,
			      enum drill_mode mode, unsigned int nregions)
{
	uint64_t b = 0;

	for (unsigned int r = 0; r < nregions; r++) {
		if (mode == DRILL_FAILOVER)
			b += x->lag_events[r];
		else if (x->lag_events[r] > b)
			b = x->lag_events[r];
	}
	return b;
}

uint64_t drill_sample_lag_ms(const struct drill_sample *x,
			     unsigned int nregions)
{
	uint64_t m = 0;

	for (unsigned int r = 0; r < nregions; r++)
		if (x->lag_ms[r] > m)
			m = x->lag_ms[r];
	return m;
}

/* --- per-second latency ---------------------------------------------------- */

/* Seconds the series covers: up to the last sample or the traffic end. */
static uint32_t nr_seconds(const struct drill_series *ser,
			   const struct drill_run_info *ri)
{
	int64_t last = ri->traffic_end_ms;

	if (ser->n && ser->v[ser->n - 1].t_ms > last)
		last = ser->v[ser->n - 1].t_ms;
	return (uint32_t)(last / 1000 + 1);
}

/*
 * The worst view's p50/p99 (us) of canaries sent in second @sec, and
 * whether any was delivered.
 */
static bool second_latency(const struct drill_check *ck, uint32_t sec,
			   uint64_t *p50, uint64_t *p99, uint64_t *delivered)
{
	unsigned int nv = drill_check_nr_views(ck);
	bool any = false;

	*p50 = *p99 = *delivered = 0;
	for (unsigned int v = 0; v < nv; v++) {
		struct drill_second s;

		if (drill_check_second(ck, v, sec, &s))
			continue;
		*delivered += s.delivered;
		if (!s.lat.count)
			continue;
		any = true;
		if (s.lat.p50_us > *p50)
			*p50 = s.lat.p50_us;
		if (s.lat.p99_us > *p99)
			*p99 = s.lat.p99_us;
	}
	*delivered /= nv ? nv : 1;
	return any;
}

/* Fault @i's recovery, against the seconds up to the next fault's start. */
static void fault_recover(const struct drill_check *ck,
			  const struct drill_run_info *ri, unsigned int i,
			  struct drill_fault_fig *f)
{
	const struct drill_fault_log *lg = &ri->faults[i];
	uint64_t sla_us = (uint64_t)ri->s->sla.latency_ms * 1000;
	int64_t e = lg->end_ms, b = ri->traffic_end_ms;
	int64_t ok_from = -1;

	f->recover_ms = -1;
	f->recovered = false;
	f->applies_recover = lg->start_ms >= 0;
	if (!f->applies_recover)
		return;
	if (e < 0)
		return;		/* never removed */
	if (b <= e) {
		f->recover_ms = 0;
		f->recovered = true;
		return;
	}
	/*
	 * The earliest second from which all later ones are within; a
	 * second inside another fault's window is that fault's, neutral.
	 */
	for (int64_t s = (b - 1) / 1000; s >= e / 1000; s--) {
		uint64_t p50, p99, d;
		bool other = false;

		for (unsigned int j = 0; j < ri->s->nr_faults; j++) {
			const struct drill_fault_log *o = &ri->faults[j];
			int64_t oe = o->end_ms >= 0 ? o->end_ms : b;

			if (j != i && o->start_ms >= 0 && o->start_ms < (s + 1) * 1000 &&
			    oe > s * 1000)
				other = true;
		}
		if (!other && second_latency(ck, (uint32_t)s, &p50, &p99, &d) &&
		    p99 > sla_us)
			break;
		ok_from = s;
	}
	if (ok_from < 0)
		return;
	f->recover_ms = ok_from * 1000 > e ? ok_from * 1000 - e : 0;
	f->recovered = f->recover_ms <= (int64_t)ri->s->sla.recover_within_ms;
}

/* --- detection and failover from the samples ------------------------------ */

static const struct drill_sample *sample_at_or_before(
	const struct drill_series *ser, int64_t t)
{
	const struct drill_sample *best = NULL;

	for (size_t k = 0; k < ser->n && ser->v[k].t_ms <= t; k++)
		if (ser->v[k].up)
			best = &ser->v[k];
	return best;
}

static void fault_detect(const struct drill_series *ser,
			 const struct drill_run_info *ri, unsigned int i,
			 struct drill_fault_fig *f)
{
	const struct drill_fault *fd = &ri->s->fault[i];
	const struct drill_fault_log *lg = &ri->faults[i];
	const struct drill_sample *base, *prev = NULL;
	int r = fd->target_region;
	size_t k, move = 0;
	uint64_t others = 0;

	f->detect_ms = f->failover_ms = -1;
	if (r < 0 || lg->start_ms < 0)
		return;
	base = sample_at_or_before(ser, lg->start_ms);
	for (k = 0; k < ser->n; k++) {
		const struct drill_sample *x = &ser->v[k];

		if (x->t_ms < lg->start_ms || !x->up)
			continue;
		if (x->breaker[r] || !x->connected[r] ||
		    x->lag_ms[r] > ri->s->sla.latency_ms ||
		    (base && x->retries[r] > base->retries[r])) {
			f->detect_ms = x->t_ms - lg->start_ms;
			break;
		}
	}
	if (ri->s->mode != DRILL_FAILOVER || !base || !base->home[r])
		return;
	for (k = 0; k < ser->n; k++) {
		const struct drill_sample *x = &ser->v[k];

		if (!x->up)
			continue;
		if (x->t_ms >= lg->start_ms && x->home[r] < base->home[r]) {
			move = k;
			break;
		}
		prev = x;
	}
	if (!move || !prev)
		return;
	for (unsigned int o = 0; o < ri->s->regions; o++)
		if ((int)o != r)
			others += prev->shipped[o];
	for (k = move; k < ser->n; k++) {
		const struct drill_sample *x = &ser->v[k];
		uint64_t now = 0;

		if (!x->up)
			continue;
		for (unsigned int o = 0; o < ri->s->regions; o++)
			if ((int)o != r)
				now += x->shipped[o];
		if (now > others) {
			f->failover_ms = x->t_ms - lg->start_ms;
			return;
		}
	}
}

/* --- figures ---------------------------------------------------------------- */

static uint64_t trouble(const struct drill_counts *c)
{
	return c->lost * 4 + c->duplicated * 2 + c->unexpected * 2 +
	       (c->acked - c->ok);
}

int drill_report_figures(const struct drill_check *ck,
			 const struct drill_series *ser,
			 const struct drill_run_info *ri,
			 struct drill_figures *out)
{
	const struct drill_scenario *s = ri->s;
	struct drill_figures fg;
	uint32_t nsec = nr_seconds(ser, ri);
	int64_t last_end = -1, worst_rec = 0;
	unsigned int worst = 0;
	char why[400] = "";
	int ret;

	memset(&fg, 0, sizeof(fg));
	fg.nviews = drill_check_nr_views(ck);
	for (unsigned int v = 0; v < fg.nviews; v++) {
		struct drill_latency l;

		ret = drill_check_counts(ck, v, -1, &fg.view[v]);
		if (ret)
			return ret;
		if (trouble(&fg.view[v]) > trouble(&fg.view[worst]))
			worst = v;
		if (!drill_check_latency(ck, v, &l)) {
			if (l.p50_us > fg.lat.p50_us)
				fg.lat.p50_us = l.p50_us;
			if (l.p99_us > fg.lat.p99_us)
				fg.lat.p99_us = l.p99_us;
			if (l.max_us > fg.lat.max_us)
				fg.lat.max_us = l.max_us;
			fg.lat.count += l.count;
		}
	}
	fg.worst = fg.view[worst];
	fg.success_pct = fg.worst.acked ?
			 100.0 * (double)fg.worst.ok / (double)fg.worst.acked :
			 0.0;
	for (unsigned int i = 0; i < s->nr_faults; i++) {
		fault_detect(ser, ri, i, &fg.fault[i]);
		fault_recover(ck, ri, i, &fg.fault[i]);
		if (ri->faults[i].end_ms > last_end)
			last_end = ri->faults[i].end_ms;
	}
	/* The worst second's p99 away from every fault and its recovery. */
	for (uint32_t sec = 0; sec < nsec && (int64_t)sec * 1000 < ri->traffic_end_ms;
	     sec++) {
		int64_t a = (int64_t)sec * 1000, b = a + 1000;
		uint64_t p50, p99, d;
		bool inside = false;

		for (unsigned int i = 0; i < s->nr_faults; i++) {
			const struct drill_fault_log *lg = &ri->faults[i];
			int64_t fe = lg->end_ms >= 0 ? lg->end_ms :
				     ri->traffic_end_ms;

			if (lg->start_ms >= 0 && a < fe + s->sla.recover_within_ms &&
			    b > lg->start_ms)
				inside = true;
		}
		if (!inside && second_latency(ck, sec, &p50, &p99, &d) &&
		    p99 / 1000 > fg.worst_p99_outside_ms)
			fg.worst_p99_outside_ms = p99 / 1000;
	}
	fg.drained = ri->drained_ms >= 0;
	fg.drain_ms = fg.drained ? ri->drained_ms - ri->traffic_end_ms : -1;
	if (fg.drain_ms < 0 && fg.drained)
		fg.drain_ms = 0;
	fg.backlog_zero_ms = -1;
	for (size_t k = 0; last_end >= 0 && k < ser->n; k++) {
		const struct drill_sample *x = &ser->v[k];

		if (x->t_ms >= last_end && x->up &&
		    !drill_sample_backlog(x, s->mode, s->regions)) {
			fg.backlog_zero_ms = x->t_ms - last_end;
			break;
		}
	}

	/* The verdict. */
	if (ri->read_error[0])
		sadd(why, sizeof(why), ", streams not read: %s", ri->read_error);
	if (fg.worst.lost)
		sadd(why, sizeof(why),
		     ", %" PRIu64 " acknowledged LOST (prefix %" PRIu64
		     ", middle %" PRIu64 ", postfix %" PRIu64 ")",
		     fg.worst.lost, fg.worst.lost_prefix, fg.worst.lost_middle,
		     fg.worst.lost_postfix);
	if (fg.worst.duplicated)
		sadd(why, sizeof(why), ", %" PRIu64 " DUPLICATED",
		     fg.worst.duplicated);
	if (fg.worst.unexpected)
		sadd(why, sizeof(why), ", %" PRIu64 " unexpected",
		     fg.worst.unexpected);
	for (unsigned int i = 0; i < s->nr_faults; i++) {
		const struct drill_fault_fig *f = &fg.fault[i];

		if (!f->applies_recover)
			continue;
		if (f->recover_ms > worst_rec)
			worst_rec = f->recover_ms;
		if (f->recover_ms < 0)
			sadd(why, sizeof(why),
			     ", '%s': latency never back within the SLA",
			     s->fault[i].name);
		else if (!f->recovered)
			sadd(why, sizeof(why),
			     ", '%s': recovered in %.1f s > %.1f s",
			     s->fault[i].name, f->recover_ms / 1000.0,
			     s->sla.recover_within_ms / 1000.0);
	}
	if (ri->daemon_crashes)
		sadd(why, sizeof(why),
		     ", evringd died %u time(s) outside its fault windows",
		     ri->daemon_crashes);
	if (ri->aborted)
		sadd(why, sizeof(why), ", aborted: %s", ri->abort_reason);
	fg.passed = !why[0] && !ri->interrupted && drill_check_passed(ck);
	if (ri->interrupted)
		sfmt(fg.verdict, sizeof(fg.verdict),
		     "drill %s: INTERRUPTED (every fault removed)", s->name);
	else if (fg.passed)
		sfmt(fg.verdict, sizeof(fg.verdict),
		     "drill %s: PASS (nothing acknowledged lost, nothing duplicated, recovered within %.1f s <= %.1f s)",
		     s->name, worst_rec / 1000.0,
		     s->sla.recover_within_ms / 1000.0);
	else
		sfmt(fg.verdict, sizeof(fg.verdict), "drill %s: %s (%s)",
		     s->name, ri->aborted ? "FAIL, aborted" : "FAIL",
		     why[0] ? why + 2 : "the checker failed");
	*out = fg;
	return 0;
}

/* --- files ---------------------------------------------------------------- */

static FILE *open_in(const struct drill_run_info *ri, const char *name,
		     char *path, size_t len)
{
	sfmt(path, len, "%s/%s", ri->dir, name);
	return fopen(path, "we");
}

static int close_file(FILE *f, const char *path, char *err, size_t errlen)
{
	if (ferror(f) | fclose(f)) {
		sfmt(err, errlen, "cannot write '%s': %s", path,
		     strerror(errno));
		return -EIO;
	}
	return 0;
}

/* The per-second rows; also into @rows for the JSON. */
static int write_series(const struct drill_check *ck,
			const struct drill_series *ser,
			const struct drill_run_info *ri, json_t *rows,
			char *err, size_t errlen)
{
	const struct drill_scenario *s = ri->s;
	uint32_t nsec = nr_seconds(ser, ri);
	uint8_t brk[DRILL_REGIONS_MAX] = { 0 };
	uint64_t backlog = 0;
	char path[4200];
	size_t k = 0;
	FILE *f = open_in(ri, "series.tsv", path, sizeof(path));

	if (!f) {
		sfmt(err, errlen, "cannot create '%s': %s", path,
		     strerror(errno));
		return -errno;
	}
	fprintf(f, "t_s\tp50_ms\tp99_ms\tthroughput\tbacklog");
	for (unsigned int r = 0; r < s->regions; r++)
		fprintf(f, "\tbreaker_r%u", r + 1);
	fputc('\n', f);
	for (uint32_t sec = 0; sec < nsec; sec++) {
		uint8_t worst[DRILL_REGIONS_MAX] = { 0 };
		uint64_t p50, p99, d;
		bool seen = false;
		json_t *row, *b = json_array();

		second_latency(ck, sec, &p50, &p99, &d);
		for (; k < ser->n && ser->v[k].t_ms < (int64_t)(sec + 1) * 1000;
		     k++) {
			const struct drill_sample *x = &ser->v[k];

			if (!x->up)
				continue;
			for (unsigned int r = 0; r < s->regions; r++)
				if (x->breaker[r] > worst[r])
					worst[r] = x->breaker[r];
			backlog = drill_sample_backlog(x, s->mode, s->regions);
			seen = true;
		}
		if (seen)
			memcpy(brk, worst, sizeof(brk));
		fprintf(f, "%u\t%.3f\t%.3f\t%" PRIu64 "\t%" PRIu64, sec,
			p50 / 1000.0, p99 / 1000.0, d, backlog);
		for (unsigned int r = 0; r < s->regions; r++) {
			fprintf(f, "\t%u", brk[r]);
			json_array_append_new(b, json_integer(brk[r]));
		}
		fputc('\n', f);
		row = json_pack("{s:I, s:f, s:f, s:I, s:I, s:o}", "t_s",
				(json_int_t)sec, "p50_ms", p50 / 1000.0, "p99_ms", p99 / 1000.0,
				"throughput", (json_int_t)d, "backlog",
				(json_int_t)backlog, "breaker", b);
		json_array_append_new(rows, row);
	}
	return close_file(f, path, err, errlen);
}

static int write_samples(const struct drill_series *ser,
			 const struct drill_run_info *ri, char *err,
			 size_t errlen)
{
	char path[4200];
	FILE *f = open_in(ri, "samples.tsv", path, sizeof(path));

	if (!f) {
		sfmt(err, errlen, "cannot create '%s': %s", path,
		     strerror(errno));
		return -errno;
	}
	fprintf(f, "t_ms\tup");
	for (unsigned int r = 0; r < ri->s->regions; r++)
		fprintf(f, "\tr%u_breaker\tr%u_connected\tr%u_home\tr%u_lag_events\tr%u_lag_ms\tr%u_shipped\tr%u_retries",
			r + 1, r + 1, r + 1, r + 1, r + 1, r + 1, r + 1);
	fputc('\n', f);
	for (size_t k = 0; k < ser->n; k++) {
		const struct drill_sample *x = &ser->v[k];

		fprintf(f, "%" PRId64 "\t%d", x->t_ms, x->up);
		for (unsigned int r = 0; r < ri->s->regions; r++)
			fprintf(f, "\t%u\t%d\t%u\t%" PRIu64 "\t%" PRIu64
				"\t%" PRIu64 "\t%" PRIu64, x->breaker[r],
				x->connected[r], x->home[r], x->lag_events[r],
				x->lag_ms[r], x->shipped[r], x->retries[r]);
		fputc('\n', f);
	}
	return close_file(f, path, err, errlen);
}

static int write_faults(const struct drill_run_info *ri, char *err,
			size_t errlen)
{
	char path[4200];
	FILE *f = open_in(ri, "faults.tsv", path, sizeof(path));

	if (!f) {
		sfmt(err, errlen, "cannot create '%s': %s", path,
		     strerror(errno));
		return -errno;
	}
	fprintf(f, "start_s\tend_s\tname\n");
	for (unsigned int i = 0; i < ri->s->nr_faults; i++) {
		const struct drill_fault_log *lg = &ri->faults[i];
		int64_t e = lg->end_ms >= 0 ? lg->end_ms : ri->traffic_end_ms;

		if (lg->start_ms < 0)
			continue;
		fprintf(f, "%.3f\t%.3f\t%s\n", lg->start_ms / 1000.0,
			e / 1000.0, ri->s->fault[i].name);
	}
	return close_file(f, path, err, errlen);
}

static json_t *counts_json(const struct drill_counts *c)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "attempted", (json_int_t)c->attempted,
			 "acked", (json_int_t)c->acked,
			 "delivered", (json_int_t)c->delivered,
			 "deliveries", (json_int_t)c->deliveries,
			 "ok", (json_int_t)c->ok,
			 "lost", (json_int_t)c->lost,
			 "lost_prefix", (json_int_t)c->lost_prefix,
			 "lost_middle", (json_int_t)c->lost_middle,
			 "lost_postfix", (json_int_t)c->lost_postfix,
			 "duplicated", (json_int_t)c->duplicated,
			 "recovered", (json_int_t)c->recovered,
			 "unknown", (json_int_t)c->unknown,
			 "unexpected", (json_int_t)c->unexpected);
}

static json_t *ms_json(int64_t ms)
{
	return ms < 0 ? json_null() : json_integer(ms);
}

/* The lost ranges of every writer in @view, at most 16 each. */
static json_t *lost_json(const struct drill_check *ck, unsigned int view,
			 unsigned int writers)
{
	json_t *a = json_array();

	for (unsigned int w = 0; w < writers; w++) {
		uint64_t r[16][2];
		size_t n = 0;

		if (drill_check_lost(ck, view, w, r, 16, &n) || !n)
			continue;
		for (size_t i = 0; i < n && i < 16; i++)
			json_array_append_new(a, json_pack("{s:i, s:I, s:I}",
				"writer", (int)w, "first", (json_int_t)r[i][0],
				"last", (json_int_t)r[i][1]));
	}
	return a;
}

static int write_json(const struct drill_check *ck,
		      const struct drill_run_info *ri,
		      const struct drill_figures *fig, json_t *rows,
		      char *err, size_t errlen)
{
	const struct drill_scenario *s = ri->s;
	json_t *j, *views = json_array(), *faults = json_array();
	json_t *regions = json_array();
	char id[DRILL_ID_HEX + 1], path[4200];
	int ret = 0;

	drill_id_format(ri->drill_id, id);
	for (unsigned int v = 0; v < fig->nviews; v++) {
		json_t *c = counts_json(&fig->view[v]);
		struct drill_latency l = { 0 };

		drill_check_latency(ck, v, &l);
		json_object_set_new(c, "view", json_string(
			s->mode == DRILL_FAILOVER ? "all regions" : ""));
		if (s->mode != DRILL_FAILOVER) {
			char name[8];

			sfmt(name, sizeof(name), "r%u", v + 1);
			json_object_set_new(c, "view", json_string(name));
		}
		json_object_set_new(c, "latency_us", json_pack(
			"{s:I, s:I, s:I, s:I}", "count", (json_int_t)l.count,
			"p50", (json_int_t)l.p50_us, "p99",
			(json_int_t)l.p99_us, "max", (json_int_t)l.max_us));
		json_object_set_new(c, "lost_ranges",
				    lost_json(ck, v, s->traffic.writers));
		json_array_append_new(views, c);
	}
	for (unsigned int r = 0; r < s->regions; r++) {
		char name[8];

		sfmt(name, sizeof(name), "r%u", r + 1);
		json_array_append_new(regions, json_pack("{s:s, s:I, s:I}",
			"name", name, "canary_messages",
			(json_int_t)ri->region_canaries[r], "foreign_messages",
			(json_int_t)ri->region_foreign[r]));
	}
	for (unsigned int i = 0; i < s->nr_faults; i++) {
		const struct drill_fault *f = &s->fault[i];
		const struct drill_fault_log *lg = &ri->faults[i];
		const struct drill_fault_fig *ff = &fig->fault[i];

		json_array_append_new(faults, json_pack(
			"{s:s, s:s, s:s, s:I, s:I, s:o, s:o, s:i, s:i, s:s, s:o, s:o, s:o, s:b}",
			"name", f->name, "kind", drill_fault_kind_name(f->kind),
			"target", f->target, "at_ms", (json_int_t)f->at_ms,
			"for_ms", (json_int_t)f->for_ms,
			"applied_ms", ms_json(lg->start_ms),
			"removed_ms", ms_json(lg->end_ms),
			"evringd_deaths", (int)lg->kills,
			"command_failures", (int)lg->job_failures,
			"how", lg->note,
			"detect_ms", ms_json(ff->detect_ms),
			"failover_ms", ms_json(ff->failover_ms),
			"recover_ms", ms_json(ff->recover_ms),
			"recovered_in_time", ff->recovered));
	}
	j = json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:i, s:s, s:{s:i, s:i, s:i, s:s, s:s}, s:{s:i, s:i, s:i}}",
		      "verdict", fig->verdict,
		      "result", ri->interrupted ? "interrupted" :
				fig->passed ? "pass" : ri->aborted ? "aborted" :
				"fail",
		      "drill", s->name, "short", ri->short_run,
		      "drill_id", id, "mode", drill_mode_name(s->mode),
		      "regions", (int)s->regions, "path", ri->path,
		      "traffic", "rate", (int)s->traffic.rate,
		      "size", (int)s->traffic.size,
		      "writers", (int)s->traffic.writers,
		      "shape", drill_shape_name(s->traffic.shape),
		      "path_asked", drill_path_name(s->traffic.path),
		      "sla", "latency_ms", (int)s->sla.latency_ms,
		      "abort_after_ms", (int)s->sla.abort_after_ms,
		      "recover_within_ms", (int)s->sla.recover_within_ms);
	if (!j) {
		sfmt(err, errlen, "cannot build the JSON report");
		json_decref(views);
		json_decref(faults);
		json_decref(regions);
		json_decref(rows);
		return -ENOMEM;
	}
	json_object_set_new(j, "duration_ms", json_integer(s->duration_ms));
	json_object_set_new(j, "traffic_end_ms",
			    json_integer(ri->traffic_end_ms));
	json_object_set_new(j, "figures", json_pack(
		"{s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:o, s:o, s:i, s:I, s:I}",
		"written", (json_int_t)fig->worst.attempted,
		"acknowledged", (json_int_t)fig->worst.acked,
		"success_pct", fig->success_pct,
		"lost", (json_int_t)fig->worst.lost,
		"lost_prefix", (json_int_t)fig->worst.lost_prefix,
		"lost_middle", (json_int_t)fig->worst.lost_middle,
		"lost_postfix", (json_int_t)fig->worst.lost_postfix,
		"duplicated", (json_int_t)fig->worst.duplicated,
		"unexpected", (json_int_t)fig->worst.unexpected,
		"recovered_unacked", (json_int_t)fig->worst.recovered,
		"unknown", (json_int_t)fig->worst.unknown,
		"p50_us", (json_int_t)fig->lat.p50_us,
		"p99_us", (json_int_t)fig->lat.p99_us,
		"max_us", (json_int_t)fig->lat.max_us,
		"backlog_drained", fig->drained,
		"drain_ms", ms_json(fig->drain_ms),
		"backlog_zero_after_last_fault_ms", ms_json(fig->backlog_zero_ms),
		"evringd_unexpected_deaths", (int)ri->daemon_crashes,
		"writer_reconnects", (json_int_t)ri->writer_reconnects,
		"worst_p99_outside_faults_ms",
		(json_int_t)fig->worst_p99_outside_ms));
	json_object_set_new(j, "views", views);
	json_object_set_new(j, "region_streams", regions);
	json_object_set_new(j, "faults", faults);
	json_object_set_new(j, "series", rows);
	if (ri->aborted)
		json_object_set_new(j, "abort_reason",
				    json_string(ri->abort_reason));
	if (ri->read_error[0])
		json_object_set_new(j, "read_error",
				    json_string(ri->read_error));
	sfmt(path, sizeof(path), "%s/report.json", ri->dir);
	if (json_dump_file(j, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER)) {
		sfmt(err, errlen, "cannot write '%s'", path);
		ret = -EIO;
	}
	json_decref(j);
	return ret;
}

static int run_plot(const struct drill_run_info *ri, char *err, size_t errlen)
{
	char out[4200], series[4200], faults[4200], title[200], sla[16];
	pid_t pid;
	int status;

	sfmt(out, sizeof(out), "%s/curves.svg", ri->dir);
	sfmt(series, sizeof(series), "%s/series.tsv", ri->dir);
	sfmt(faults, sizeof(faults), "%s/faults.tsv", ri->dir);
	sfmt(title, sizeof(title), "drill %s%s (%s, %u regions)",
	     ri->s->name, ri->short_run ? " --short" : "",
	     drill_mode_name(ri->s->mode), ri->s->regions);
	sfmt(sla, sizeof(sla), "%u", ri->s->sla.latency_ms);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		setpgid(0, 0);
		execl(ri->plot, ri->plot, "-o", out, "-f", faults, "-t", title,
		      "-s", sla, series, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		sfmt(err, errlen, "%s failed (status %d)", ri->plot,
		     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -EIO;
	}
	return 0;
}

static const char *ms_str(int64_t ms, char *buf, size_t len)
{
	if (ms < 0)
		sfmt(buf, len, "-");
	else
		sfmt(buf, len, "%.2f s", ms / 1000.0);
	return buf;
}

static void print_table(const struct drill_run_info *ri,
			const struct drill_figures *fig)
{
	const struct drill_scenario *s = ri->s;
	char id[DRILL_ID_HEX + 1], a[32], b[32], c[32];

	drill_id_format(ri->drill_id, id);
	printf("drill %s%s: id %s, %s mode, %u regions, %u writers at %u events/s (%s), %.1f s\n",
	       s->name, ri->short_run ? " (short run)" : "", id,
	       drill_mode_name(s->mode), s->regions, s->traffic.writers,
	       s->traffic.rate, ri->path, s->duration_ms / 1000.0);
	printf("  %-24s %" PRIu64 "\n", "written", fig->worst.attempted);
	printf("  %-24s %" PRIu64 "\n", "acknowledged", fig->worst.acked);
	for (unsigned int r = 0; r < s->regions; r++) {
		char k[32];

		sfmt(k, sizeof(k), "delivered r%u", r + 1);
		if (s->mode == DRILL_REPLICATE)
			printf("  %-24s %" PRIu64 " distinct (%" PRIu64
			       " messages)\n", k, fig->view[r].delivered,
			       ri->region_canaries[r]);
		else
			printf("  %-24s %" PRIu64 " canaries\n", k,
			       ri->region_canaries[r]);
	}
	printf("  %-24s %.3f %% (ok / acknowledged, worst view)\n",
	       "success rate", fig->success_pct);
	printf("  %-24s %" PRIu64 " (prefix %" PRIu64 ", middle %" PRIu64
	       ", postfix %" PRIu64 ")\n", "lost (acknowledged)",
	       fig->worst.lost, fig->worst.lost_prefix,
	       fig->worst.lost_middle, fig->worst.lost_postfix);
	printf("  %-24s %" PRIu64 "\n", "duplicated", fig->worst.duplicated);
	printf("  %-24s %" PRIu64 "\n", "unexpected", fig->worst.unexpected);
	printf("  %-24s %" PRIu64 " delivered, %" PRIu64 " not\n",
	       "unacknowledged", fig->worst.recovered, fig->worst.unknown);
	printf("  %-24s p50 %.1f ms, p99 %.1f ms, max %.1f ms (SLA %u ms)\n",
	       "latency", fig->lat.p50_us / 1000.0, fig->lat.p99_us / 1000.0,
	       fig->lat.max_us / 1000.0, s->sla.latency_ms);
	printf("  %-24s %" PRIu64 " ms (worst second)\n",
	       "p99 outside faults", fig->worst_p99_outside_ms);
	for (unsigned int i = 0; i < s->nr_faults; i++) {
		const struct drill_fault_log *lg = &ri->faults[i];
		const struct drill_fault_fig *f = &fig->fault[i];

		printf("  fault %-18s %s %s, %.1f-%.1f s: detect %s, fail over %s, recover %s%s\n",
		       s->fault[i].name, drill_fault_kind_name(s->fault[i].kind),
		       s->fault[i].target, lg->start_ms / 1000.0,
		       lg->end_ms / 1000.0, ms_str(f->detect_ms, a, sizeof(a)),
		       ms_str(f->failover_ms, b, sizeof(b)),
		       f->recover_ms < 0 ? "never" :
		       ms_str(f->recover_ms, c, sizeof(c)),
		       lg->kills ? "" : "");
		if (lg->kills || lg->job_failures)
			printf("  %-24s evringd deaths %u, failed commands %u\n",
			       "", lg->kills, lg->job_failures);
		printf("  %-24s %s\n", "", lg->note);
	}
	printf("  %-24s %s", "backlog drained", fig->drained ? "yes" : "NO");
	if (fig->drained)
		printf(", %.2f s after the traffic stopped", fig->drain_ms / 1000.0);
	if (fig->backlog_zero_ms >= 0)
		printf("; first empty %.2f s after the last fault",
		       fig->backlog_zero_ms / 1000.0);
	putchar('\n');
	if (ri->daemon_crashes)
		printf("  %-24s %u\n", "evringd deaths (other)",
		       ri->daemon_crashes);
	if (ri->writer_reconnects)
		printf("  %-24s %" PRIu64 "\n", "writer reconnects",
		       ri->writer_reconnects);
}

int drill_report_write(const struct drill_check *ck,
		       const struct drill_series *ser,
		       const struct drill_run_info *ri,
		       const struct drill_figures *fig, char *err,
		       size_t errlen)
{
	json_t *rows = json_array();
	char e2[300] = "";
	int ret;

	ret = write_series(ck, ser, ri, rows, err, errlen);
	if (!ret)
		ret = write_samples(ser, ri, err, errlen);
	if (!ret)
		ret = write_faults(ri, err, errlen);
	if (!ret)
		ret = write_json(ck, ri, fig, rows, err, errlen);
	else
		json_decref(rows);
	print_table(ri, fig);
	if (!ret) {
		ret = run_plot(ri, e2, sizeof(e2));
		if (ret)
			sfmt(err, errlen, "%s", e2);
	}
	printf("  %-24s %s/report.json, series.tsv, samples.tsv, faults.tsv\n",
	       "report", ri->dir);
	if (!ret)
		printf("  %-24s %s/curves.svg\n", "curves", ri->dir);
	printf("%s\n", fig->verdict);
	fflush(stdout);
	return ret;
}
