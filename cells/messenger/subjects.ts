/**
 * The messenger's subjects, under its organism's prefix (the kernel's Namespace knows
 * nothing of them): each user's inbox in the messages stream, and the events pushed to a
 * user's live sockets on whichever receiver holds them. A user name is one subject token
 * (cells/messenger/user-name.ts), so an inbox subject's last token is its owner.
 */
import type { Namespace } from '../../organism/kernel/namespace.ts';

export class MessengerSubjects {
  readonly #prefix: string;

  constructor(ns: Pick<Namespace, 'prefix'>) {
    this.#prefix = ns.prefix;
  }

  /** A user's inbox in the messages stream. */
  inbox(user: string): string {
    return `${this.#prefix}.inbox.${user}`;
  }

  /** Every inbox: the messages stream's subjects. */
  get inboxes(): string {
    return `${this.#prefix}.inbox.*`;
  }

  /** Presence, receipts and deletions pushed to a user's live sockets, on whichever receiver holds them. */
  userEvents(user: string): string {
    return `${this.#prefix}.user.${user}`;
  }

  /** A session of the user ended (a logout): the body is the hash of its token. */
  sessionEnded(user: string): string {
    return `${this.userEvents(user)}.ended`;
  }
}

/** Whose inbox a stored message's subject is. */
export const recipientOf = (inboxSubject: string): string => inboxSubject.slice(inboxSubject.lastIndexOf('.') + 1);
