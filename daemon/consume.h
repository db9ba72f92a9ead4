/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * consume: `evringctl consume`, reads one or more regions' JetStream
 * streams back, decodes every batch, prints it as JSON lines and checks it
 * with the stream verifier (daemon/verify.h).
 *
 *	evringctl consume --region NAME [--region NAME2 ...] [--config FILE]
 *			  [--from SEQ] [--format json|none]
 *			  [--expect HOST/SOURCE-PART/EPOCH/FIRST-LAST ...]
 *
 * Guarantees:
 *  - stdout: with --format json (the default) one JSON object per line, per
 *    event or per dead-letter marker, in stream order, region by region.
 *  - stderr: the last line is always the summary
 *	consume: N events in M batches from R region(s); duplicates D;
 *	gaps G (explained E); dead-lettered X; verdict ok|FAIL
 *    unless the command could not start (usage, config, region).
 *  - Exit status: 0 when the verifier found nothing wrong (verify_ok())
 *    and no message was corrupt; 1 on verdict FAIL; 2 on a usage error, a
 *    config error, an unknown region or an unreachable region.
 */
#ifndef EVRINGD_CONSUME_H
#define EVRINGD_CONSUME_H

/* argv[0] is "consume"; returns the process exit status (0, 1 or 2). */
int consume_main(int argc, char **argv);

#endif /* EVRINGD_CONSUME_H */
