/**
 * The stored-message format (cells/messenger/inbox.ts) and the messenger's subjects
 * (cells/messenger/subjects.ts), as data: the wire names stay what they were.
 */
import test from 'ava';
import { headers } from '@nats-io/transport-node';
import { Namespace } from '../../organism/kernel/namespace.ts';
import { cursorKey, delivered, H } from '../../cells/messenger/inbox.ts';
import { MessengerSubjects, recipientOf } from '../../cells/messenger/subjects.ts';

test('inbox - subjects and keys are the wire names: org.<id>.inbox.<user>, org.<id>.user.<user>[.ended], u.<user>', (t) => {
  const s = new MessengerSubjects(new Namespace('o1'));
  t.is(s.inbox('ann'), 'org.o1.inbox.ann');
  t.is(s.inboxes, 'org.o1.inbox.*');
  t.is(s.userEvents('ann'), 'org.o1.user.ann');
  t.is(s.sessionEnded('ann'), 'org.o1.user.ann.ended');
  t.is(recipientOf(s.inbox('bob_2')), 'bob_2');
  t.is(cursorKey('ann'), 'u.ann');
  t.deepEqual(H, { FROM: 'Cm-From', MSG: 'Cm-Msg', AT: 'Cm-At', GROUP: 'Cm-Group' });
});

test('inbox - a stored copy reads back as a Delivered frame; one without our headers is skipped', (t) => {
  const h = headers();
  h.set(H.FROM, 'ann');
  h.set(H.MSG, 'msg-0001');
  h.set(H.AT, '1700000000000');
  const body = new Uint8Array([1, 2, 3]);
  t.deepEqual(delivered({ seq: 7, subject: 'org.o1.inbox.bob', data: body, headers: h }), { seq: 7, msg: 'msg-0001', from: 'ann', to: 'bob', at: 1700000000000, body });
  h.set(H.GROUP, 'group-0001');
  t.is(delivered({ seq: 7, subject: 'org.o1.inbox.bob', data: body, headers: h })?.group, 'group-0001');
  const foreign = headers();
  foreign.set(H.FROM, 'ann');
  t.is(delivered({ seq: 8, subject: 'org.o1.inbox.bob', data: body, headers: foreign }), null);
  t.is(delivered({ seq: 9, subject: 'org.o1.inbox.bob', data: body }), null);
});
