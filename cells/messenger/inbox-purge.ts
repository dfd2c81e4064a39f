/**
 * Removes every stored message of one inbox from the messages stream: the last step of
 * deleting an account (Accounts.deleteAccount clears the buckets; the stream is purged here
 * by subject filter, which JetStream does in one request however many messages there are).
 */
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Namespace } from '../../organism/kernel/namespace.ts';
import { checkUsername } from './user-name.ts';
import { MESSAGES_STREAM } from './stores.ts';

/** Purges `user`'s inbox; returns how many messages went. */
export async function purgeInbox(nc: NatsConnection, ns: Namespace, user: string): Promise<number> {
  // The name becomes a subject token: a '*' or '>' in it would purge other inboxes.
  checkUsername(user);
  const jsm = await jetstreamManager(nc);
  const r = await jsm.streams.purge(ns.stream(MESSAGES_STREAM), { filter: ns.inbox(user) });
  return r.purged;
}
