// SPDX-License-Identifier: GPL-2.0-only
/*
 * The "evring" generic netlink family: per-partition statistics, the
 * settings that may change while loaded, and the "notify" multicast group
 * (high-water crossings, consumer attach and detach).
 */
#include <net/genetlink.h>
#include "evring.h"

static struct genl_family evring_genl;

/* Not const: 6.1's nla_policy takes a mutable pointer. */
static struct netlink_range_validation evring_timeout_range = {
	.min = 1,
	.max = 3600000,		/* as the fsync_timeout_ms parameter */
};

static const struct nla_policy evring_policy[EVRING_A_MAX + 1] = {
	[EVRING_A_PARTITION] = { .type = NLA_U32 },
	[EVRING_A_HIGHWATER_PCT] = NLA_POLICY_RANGE(NLA_U32, 1, 100),
	[EVRING_A_FSYNC_TIMEOUT_MS] =
		NLA_POLICY_FULL_RANGE(NLA_U32, &evring_timeout_range),
};

static const struct genl_multicast_group evring_mcgrps[] = {
	{ .name = EVRING_GENL_MCGRP },
};

static int evring_put_u64(struct sk_buff *skb, int type, u64 v)
{
	return nla_put_u64_64bit(skb, type, v, EVRING_A_PAD);
}

static int evring_fill_stats(struct sk_buff *skb, struct evring_part *p)
{
	u64 prod, release;

	/* Pair with the release stores in evring_run_publish() and RELEASE. */
	prod = smp_load_acquire(&p->prod->prod_pos);
	/* Release after prod: never a negative fill. */
	release = smp_load_acquire(&p->prod->release_pos);
	if (nla_put_u32(skb, EVRING_A_PARTITION, p->index) ||
	    evring_put_u64(skb, EVRING_A_EPOCH, evring_epoch) ||
	    nla_put_u32(skb, EVRING_A_RING_SIZE, p->mask + 1) ||
	    evring_put_u64(skb, EVRING_A_PRODUCED, READ_ONCE(p->produced)) ||
	    evring_put_u64(skb, EVRING_A_PRODUCED_BYTES,
			   READ_ONCE(p->produced_bytes)) ||
	    evring_put_u64(skb, EVRING_A_RELEASED, READ_ONCE(p->released)) ||
	    evring_put_u64(skb, EVRING_A_PROD_POS, prod) ||
	    evring_put_u64(skb, EVRING_A_RELEASE_POS, release) ||
	    nla_put_u32(skb, EVRING_A_FILL, prod - release) ||
	    nla_put_u32(skb, EVRING_A_FILL_HWM, READ_ONCE(p->fill_hwm)) ||
	    nla_put_u32(skb, EVRING_A_WRITERS_BLOCKED,
			atomic_read(&p->writers_blocked)) ||
	    evring_put_u64(skb, EVRING_A_BLOCKS, atomic64_read(&p->blocks)) ||
	    evring_put_u64(skb, EVRING_A_EAGAINS, atomic64_read(&p->eagains)) ||
	    evring_put_u64(skb, EVRING_A_FSYNC_WAITS,
			   atomic64_read(&p->fsync_waits)) ||
	    evring_put_u64(skb, EVRING_A_FSYNC_TIMEOUTS,
			   atomic64_read(&p->fsync_timeouts)) ||
	    evring_put_u64(skb, EVRING_A_WAKEUPS, atomic64_read(&p->wakeups)) ||
	    nla_put_u32(skb, EVRING_A_CONSUMER, !!READ_ONCE(p->consumer)) ||
	    nla_put_u32(skb, EVRING_A_CONSUMER_PID, READ_ONCE(p->consumer_pid)))
		return -EMSGSIZE;
	return 0;
}

static int evring_get_stats_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *msg;
	void *hdr;
	u32 idx;

	if (GENL_REQ_ATTR_CHECK(info, EVRING_A_PARTITION))
		return -EINVAL;
	idx = nla_get_u32(info->attrs[EVRING_A_PARTITION]);
	if (idx >= evring_params.partitions) {
		NL_SET_ERR_MSG_ATTR(info->extack,
				    info->attrs[EVRING_A_PARTITION],
				    "no such partition");
		return -EINVAL;
	}
	msg = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &evring_genl, 0,
				EVRING_CMD_GET_STATS);
	if (!hdr || evring_fill_stats(msg, &evring_parts[idx])) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

/* One message per partition; cb->args[0] is the next partition. */
static int evring_get_stats_dumpit(struct sk_buff *skb,
				   struct netlink_callback *cb)
{
	u32 idx;

	for (idx = cb->args[0]; idx < evring_params.partitions; idx++) {
		void *hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid,
					cb->nlh->nlmsg_seq, &evring_genl,
					NLM_F_MULTI, EVRING_CMD_GET_STATS);

		if (!hdr)
			break;
		if (evring_fill_stats(skb, &evring_parts[idx])) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
	}
	cb->args[0] = idx;
	return skb->len;
}

static int evring_get_config_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *msg;
	void *hdr;

	msg = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &evring_genl, 0,
				EVRING_CMD_GET_CONFIG);
	if (!hdr ||
	    nla_put_u32(msg, EVRING_A_NR_PARTITIONS, evring_params.partitions) ||
	    nla_put_u32(msg, EVRING_A_RING_SIZE, evring_params.ring_size) ||
	    nla_put_u32(msg, EVRING_A_MAX_RECORD, evring_params.max_record) ||
	    evring_put_u64(msg, EVRING_A_EPOCH, evring_epoch) ||
	    nla_put_u32(msg, EVRING_A_HIGHWATER_PCT,
			READ_ONCE(evring_params.highwater_pct)) ||
	    nla_put_u32(msg, EVRING_A_FSYNC_TIMEOUT_MS,
			READ_ONCE(evring_params.fsync_timeout_ms))) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

/* Values were range-checked by evring_policy before we are called. */
static int evring_set_config_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr *pct = info->attrs[EVRING_A_HIGHWATER_PCT];
	struct nlattr *tmo = info->attrs[EVRING_A_FSYNC_TIMEOUT_MS];

	if (!pct && !tmo) {
		NL_SET_ERR_MSG(info->extack, "nothing to set");
		return -EINVAL;
	}
	if (pct)
		WRITE_ONCE(evring_params.highwater_pct, nla_get_u32(pct));
	if (tmo)
		WRITE_ONCE(evring_params.fsync_timeout_ms, nla_get_u32(tmo));
	return 0;
}

static const struct genl_small_ops evring_genl_ops[] = {
	{
		.cmd = EVRING_CMD_GET_STATS,
		.doit = evring_get_stats_doit,
		.dumpit = evring_get_stats_dumpit,
	},
	{
		.cmd = EVRING_CMD_GET_CONFIG,
		.doit = evring_get_config_doit,
	},
	{
		.cmd = EVRING_CMD_SET_CONFIG,
		.doit = evring_set_config_doit,
		.flags = GENL_ADMIN_PERM,
	},
};

static struct genl_family evring_genl __ro_after_init = {
	.name = EVRING_GENL_NAME,
	.version = EVRING_GENL_VERSION,
	.maxattr = EVRING_A_MAX,
	.policy = evring_policy,
	.module = THIS_MODULE,
	.small_ops = evring_genl_ops,
	.n_small_ops = ARRAY_SIZE(evring_genl_ops),
	.resv_start_op = EVRING_CMD_MAX + 1,
	.mcgrps = evring_mcgrps,
	.n_mcgrps = ARRAY_SIZE(evring_mcgrps),
};

/* Build and multicast one notification; dropped when nobody listens. */
static void evring_notify(u8 cmd, struct evring_part *p, u32 attr, u32 val)
{
	struct sk_buff *msg;
	void *hdr;

	if (!genl_has_listeners(&evring_genl, &init_net, 0))
		return;
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return;
	hdr = genlmsg_put(msg, 0, 0, &evring_genl, 0, cmd);
	if (!hdr ||
	    nla_put_u32(msg, EVRING_A_PARTITION, p->index) ||
	    nla_put_u32(msg, EVRING_A_RING_SIZE, p->mask + 1) ||
	    nla_put_u32(msg, attr, val)) {
		nlmsg_free(msg);
		return;
	}
	genlmsg_end(msg, hdr);
	genlmsg_multicast(&evring_genl, msg, 0, 0, GFP_KERNEL);
}

void evring_notify_highwater(struct evring_part *p, u32 fill)
{
	evring_notify(EVRING_CMD_HIGHWATER, p, EVRING_A_FILL, fill);
}

void evring_notify_consumer(struct evring_part *p, u8 cmd, pid_t pid)
{
	evring_notify(cmd, p, EVRING_A_CONSUMER_PID, pid);
}

int evring_genl_init(void)
{
	return genl_register_family(&evring_genl);
}

void evring_genl_exit(void)
{
	genl_unregister_family(&evring_genl);
}
