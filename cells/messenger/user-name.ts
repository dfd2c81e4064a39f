/**
 * The server's use of the protocol's one user name rule (`USER_NAME`, organism/wire/frames.ts):
 * a name is a NATS subject token (an inbox, a user's events) and a KV key part, so nothing
 * else may ever reach a subject or a key. A name that breaks it is ACCOUNT_ERR_USERNAME.
 */
import { CellularError } from '../../organism/wire/errors.ts';
import { USER_NAME } from '../../organism/wire/frames.ts';

export const isUsername = (user: unknown): user is string => typeof user === 'string' && USER_NAME.test(user);

export function checkUsername(user: unknown): asserts user is string {
  if (!isUsername(user)) {
    throw new CellularError('ACCOUNT_ERR_USERNAME', `a username must be 3-32 lowercase letters, digits, dashes or underscores, starting with a letter or digit; received ${JSON.stringify(String(user).slice(0, 40))}`);
  }
}
