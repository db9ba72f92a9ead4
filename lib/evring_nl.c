// SPDX-License-Identifier: GPL-2.0-only
/*
 * The libmnl adapter for the "evring" generic netlink family.  Nothing of
 * libmnl leaks out of this file: callers see struct evring_nl and -errno.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include "evring.h"

/* Large enough for a dump datagram (libmnl's MNL_SOCKET_DUMP_SIZE). */
#define EVRING_NL_BUF 32768

struct evring_nl {
	struct mnl_socket *sock;	/* requests and their replies */
	struct mnl_socket *notify;	/* the notify group, once subscribed */
	unsigned int portid;
	unsigned int seq;
	uint16_t family;
	uint32_t mcgrp;
	char buf[EVRING_NL_BUF];
};

static struct nlmsghdr *evring_nl_request(struct evring_nl *nl, uint16_t type,
					  uint16_t flags, uint8_t cmd,
					  uint8_t version)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(nl->buf);
	struct genlmsghdr *g;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = ++nl->seq;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = cmd;
	g->version = version;
	return nlh;
}

/* Send @nlh and run @cb over every reply until the ack. */
static int evring_nl_talk(struct evring_nl *nl, struct nlmsghdr *nlh,
			  mnl_cb_t cb, void *data)
{
	unsigned int seq = nlh->nlmsg_seq;
	ssize_t n;
	int ret;

	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	do {
		n = mnl_socket_recvfrom(nl->sock, nl->buf, sizeof(nl->buf));
		if (n < 0)
			return -errno;
		ret = mnl_cb_run(nl->buf, n, seq, nl->portid, cb, data);
	} while (ret > 0);
	return ret < 0 ? -errno : 0;
}

struct evring_family_reply {
	uint16_t id;
	uint32_t mcgrp;
};

static int evring_nl_mcgrp_cb(const struct nlattr *grp, void *data)
{
	struct evring_family_reply *r = data;
	const struct nlattr *a;
	const char *name = NULL;
	uint32_t id = 0;

	mnl_attr_for_each_nested(a, grp) {
		if (mnl_attr_get_type(a) == CTRL_ATTR_MCAST_GRP_NAME)
			name = mnl_attr_get_str(a);
		else if (mnl_attr_get_type(a) == CTRL_ATTR_MCAST_GRP_ID)
			id = mnl_attr_get_u32(a);
	}
	if (name && !strcmp(name, EVRING_GENL_MCGRP))
		r->mcgrp = id;
	return MNL_CB_OK;
}

static int evring_nl_family_cb(const struct nlmsghdr *nlh, void *data)
{
	struct evring_family_reply *r = data;
	const struct nlattr *a, *g;

	mnl_attr_for_each(a, nlh, sizeof(struct genlmsghdr)) {
		if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID)
			r->id = mnl_attr_get_u16(a);
		if (mnl_attr_get_type(a) != CTRL_ATTR_MCAST_GROUPS)
			continue;
		mnl_attr_for_each_nested(g, a)
			evring_nl_mcgrp_cb(g, r);
	}
	return MNL_CB_OK;
}

int evring_nl_open(struct evring_nl **out)
{
	struct evring_family_reply r = { 0 };
	struct evring_nl *nl;
	struct nlmsghdr *nlh;
	int ret;

	nl = calloc(1, sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	nl->sock = mnl_socket_open2(NETLINK_GENERIC, SOCK_CLOEXEC);
	if (!nl->sock || mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		goto fail;
	}
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = time(NULL);

	nlh = evring_nl_request(nl, GENL_ID_CTRL, 0, CTRL_CMD_GETFAMILY, 1);
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, EVRING_GENL_NAME);
	ret = evring_nl_talk(nl, nlh, evring_nl_family_cb, &r);
	if (ret)
		goto fail;
	if (!r.id) {
		ret = -ENOENT;
		goto fail;
	}
	nl->family = r.id;
	nl->mcgrp = r.mcgrp;
	*out = nl;
	return 0;
fail:
	evring_nl_close(nl);
	return ret;
}

void evring_nl_close(struct evring_nl *nl)
{
	if (!nl)
		return;
	if (nl->sock)
		mnl_socket_close(nl->sock);
	if (nl->notify)
		mnl_socket_close(nl->notify);
	free(nl);
}

static uint64_t attr_u64(const struct nlattr *a)
{
	return mnl_attr_get_u64(a);
}

static int evring_nl_stats_parse(const struct nlmsghdr *nlh,
				 struct evring_part_stats *s)
{
	const struct nlattr *a;

	memset(s, 0, sizeof(*s));
	mnl_attr_for_each(a, nlh, sizeof(struct genlmsghdr)) {
		switch (mnl_attr_get_type(a)) {
		case EVRING_A_PARTITION: s->partition = mnl_attr_get_u32(a); break;
		case EVRING_A_RING_SIZE: s->ring_size = mnl_attr_get_u32(a); break;
		case EVRING_A_EPOCH: s->epoch = attr_u64(a); break;
		case EVRING_A_PRODUCED: s->produced = attr_u64(a); break;
		case EVRING_A_PRODUCED_BYTES: s->produced_bytes = attr_u64(a); break;
		case EVRING_A_RELEASED: s->released = attr_u64(a); break;
		case EVRING_A_PROD_POS: s->prod_pos = attr_u64(a); break;
		case EVRING_A_RELEASE_POS: s->release_pos = attr_u64(a); break;
		case EVRING_A_FILL: s->fill = mnl_attr_get_u32(a); break;
		case EVRING_A_FILL_HWM: s->fill_hwm = mnl_attr_get_u32(a); break;
		case EVRING_A_WRITERS_BLOCKED:
			s->writers_blocked = mnl_attr_get_u32(a);
			break;
		case EVRING_A_CONSUMER: s->consumer = mnl_attr_get_u32(a); break;
		case EVRING_A_CONSUMER_PID:
			s->consumer_pid = mnl_attr_get_u32(a);
			break;
		case EVRING_A_BLOCKS: s->blocks = attr_u64(a); break;
		case EVRING_A_EAGAINS: s->eagains = attr_u64(a); break;
		case EVRING_A_FSYNC_WAITS: s->fsync_waits = attr_u64(a); break;
		case EVRING_A_FSYNC_TIMEOUTS: s->fsync_timeouts = attr_u64(a); break;
		case EVRING_A_WAKEUPS: s->wakeups = attr_u64(a); break;
		}
	}
	return MNL_CB_OK;
}

struct evring_stats_sink {
	struct evring_part_stats *out;
	unsigned int max, n;
};

static int evring_nl_stats_cb(const struct nlmsghdr *nlh, void *data)
{
	struct evring_stats_sink *sink = data;
	struct evring_part_stats s;

	evring_nl_stats_parse(nlh, &s);
	if (sink->n < sink->max)
		sink->out[sink->n] = s;
	sink->n++;
	return MNL_CB_OK;
}

int evring_nl_stats(struct evring_nl *nl, unsigned int partition,
		    struct evring_part_stats *out)
{
	struct evring_part_stats s;
	struct evring_stats_sink sink = { .out = &s, .max = 1 };
	struct nlmsghdr *nlh;
	int ret;

	nlh = evring_nl_request(nl, nl->family, 0, EVRING_CMD_GET_STATS,
				EVRING_GENL_VERSION);
	mnl_attr_put_u32(nlh, EVRING_A_PARTITION, partition);
	ret = evring_nl_talk(nl, nlh, evring_nl_stats_cb, &sink);
	if (ret)
		return ret;
	if (sink.n != 1)
		return -EPROTO;
	*out = s;
	return 0;
}

int evring_nl_stats_all(struct evring_nl *nl, struct evring_part_stats *out,
			unsigned int max, unsigned int *n)
{
	struct evring_stats_sink sink = { .out = out, .max = max };
	struct nlmsghdr *nlh;
	int ret;

	nlh = evring_nl_request(nl, nl->family, NLM_F_DUMP,
				EVRING_CMD_GET_STATS, EVRING_GENL_VERSION);
	ret = evring_nl_talk(nl, nlh, evring_nl_stats_cb, &sink);
	if (ret)
		return ret;
	*n = sink.n;
	return 0;
}

static int evring_nl_config_cb(const struct nlmsghdr *nlh, void *data)
{
	struct evring_config *c = data;
	const struct nlattr *a;

	mnl_attr_for_each(a, nlh, sizeof(struct genlmsghdr)) {
		switch (mnl_attr_get_type(a)) {
		case EVRING_A_EPOCH: c->epoch = attr_u64(a); break;
		case EVRING_A_NR_PARTITIONS:
			c->nr_partitions = mnl_attr_get_u32(a);
			break;
		case EVRING_A_RING_SIZE: c->ring_size = mnl_attr_get_u32(a); break;
		case EVRING_A_MAX_RECORD: c->max_record = mnl_attr_get_u32(a); break;
		case EVRING_A_HIGHWATER_PCT:
			c->highwater_pct = mnl_attr_get_u32(a);
			break;
		case EVRING_A_FSYNC_TIMEOUT_MS:
			c->fsync_timeout_ms = mnl_attr_get_u32(a);
			break;
		}
	}
	return MNL_CB_OK;
}

int evring_nl_get_config(struct evring_nl *nl, struct evring_config *out)
{
	struct evring_config c = { 0 };
	struct nlmsghdr *nlh;
	int ret;

	nlh = evring_nl_request(nl, nl->family, 0, EVRING_CMD_GET_CONFIG,
				EVRING_GENL_VERSION);
	ret = evring_nl_talk(nl, nlh, evring_nl_config_cb, &c);
	if (ret)
		return ret;
	if (!c.nr_partitions)
		return -EPROTO;
	*out = c;
	return 0;
}

int evring_nl_set_config(struct evring_nl *nl, uint32_t highwater_pct,
			 uint32_t fsync_timeout_ms)
{
	struct nlmsghdr *nlh;

	nlh = evring_nl_request(nl, nl->family, 0, EVRING_CMD_SET_CONFIG,
				EVRING_GENL_VERSION);
	if (highwater_pct)
		mnl_attr_put_u32(nlh, EVRING_A_HIGHWATER_PCT, highwater_pct);
	if (fsync_timeout_ms)
		mnl_attr_put_u32(nlh, EVRING_A_FSYNC_TIMEOUT_MS,
				 fsync_timeout_ms);
	return evring_nl_talk(nl, nlh, NULL, NULL);
}

/*
 * Notices get a socket of their own: on the request socket a multicast
 * (seq 0, portid 0) would pass libmnl's checks as a reply to whatever
 * request is in flight, and be lost to evring_nl_next_notice().
 */
int evring_nl_subscribe(struct evring_nl *nl)
{
	int grp = nl->mcgrp, ret;

	if (!grp)
		return -ENOENT;
	if (nl->notify)
		return 0;
	nl->notify = mnl_socket_open2(NETLINK_GENERIC, SOCK_CLOEXEC);
	if (!nl->notify)
		return -errno;
	if (mnl_socket_bind(nl->notify, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    mnl_socket_setsockopt(nl->notify, NETLINK_ADD_MEMBERSHIP, &grp,
				  sizeof(grp)) < 0) {
		ret = -errno;
		mnl_socket_close(nl->notify);
		nl->notify = NULL;
		return ret;
	}
	return 0;
}

static int evring_nl_notice_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct genlmsghdr *g = mnl_nlmsg_get_payload(nlh);
	struct evring_notice *n = data;
	const struct nlattr *a;

	memset(n, 0, sizeof(*n));
	n->cmd = g->cmd;
	mnl_attr_for_each(a, nlh, sizeof(*g)) {
		switch (mnl_attr_get_type(a)) {
		case EVRING_A_PARTITION: n->partition = mnl_attr_get_u32(a); break;
		case EVRING_A_FILL: n->fill = mnl_attr_get_u32(a); break;
		case EVRING_A_RING_SIZE: n->ring_size = mnl_attr_get_u32(a); break;
		case EVRING_A_CONSUMER_PID: n->pid = mnl_attr_get_u32(a); break;
		}
	}
	return MNL_CB_OK;
}

int evring_nl_next_notice(struct evring_nl *nl, int timeout_ms,
			  struct evring_notice *out)
{
	struct pollfd pfd = { .events = POLLIN };
	struct evring_notice n;
	ssize_t len;
	int ret;

	if (!nl->notify)
		return -EINVAL;
	pfd.fd = mnl_socket_get_fd(nl->notify);
	ret = poll(&pfd, 1, timeout_ms);
	if (ret < 0)
		return -errno;
	if (!ret)
		return 0;
	len = mnl_socket_recvfrom(nl->notify, nl->buf, sizeof(nl->buf));
	if (len < 0)
		return -errno;
	/* One notification per datagram; seq 0 and portid 0 (the kernel). */
	ret = mnl_cb_run(nl->buf, len, 0, 0, evring_nl_notice_cb, &n);
	if (ret < 0)
		return -errno;
	*out = n;
	return 1;
}
