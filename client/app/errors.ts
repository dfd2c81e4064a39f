/**
 * What the person is told for every error the protocol can return (docs/protocol.md,
 * "Errors" and "Close codes"), and for the client's own failures. The code is kept on the
 * element (data-code) for tests and bug reports; the words are for people.
 */
export const ERROR_TEXT: Readonly<Record<string, string>> = {
  PROTO_ERR_MALFORMED: 'The server could not read what this app sent. Reload the page.',
  PROTO_ERR_TOO_LARGE: 'That is too large to send. Shorten the message.',
  PROTO_ERR_UNKNOWN_TYPE: 'The server does not know this request. Reload the page to get the current app.',
  PROTO_ERR_BAD_FIELD: 'The server refused a value in this request (for example a user name that cannot exist).',
  PROTO_ERR_RATE: 'Too many requests at once. Wait a moment and try again.',
  AUTH_ERR_REQUIRED: 'You are not logged in on this connection. Log in again.',
  AUTH_ERR_CREDENTIALS: 'Wrong user name or password.',
  AUTH_ERR_SESSION: 'Your session has ended. Log in again.',
  AUTH_ERR_RATE_LIMITED: 'Too many attempts. Wait a minute before trying again.',
  AUTH_ERR_LEGACY: 'This account was made before passwords stopped reaching the server. Logging in once more upgrades it.',
  AUTH_ERR_PROOF: 'For this, log in again with your password (a session alone is not enough).',
  ACCOUNT_ERR_EXISTS: 'That user name is taken. Choose another.',
  ACCOUNT_ERR_NOT_FOUND: 'There is no user by that name.',
  ACCOUNT_ERR_USERNAME: 'User names are 3 to 32 characters: lowercase letters, digits, _ and -, starting with a letter or digit.',
  ACCOUNT_ERR_PASSWORD: 'Passwords must be at least 8 characters long.',
  ACCOUNT_ERR_KEYS: 'The server refused your public keys.',
  MESSAGE_ERR_FORBIDDEN: 'You cannot change that message.',
  MESSAGE_ERR_NOT_FOUND: 'That message is no longer stored.',
  MESSAGE_ERR_STORE: 'The message could not be stored yet; it will be sent again.',
  MESSAGE_ERR_QUOTA: 'Their inbox is full, so this message was not sent. Try again later.',
  STORE_ERR_FULL: 'The server has no room for more messages, so this one was not sent. Try again later.',
  MESSAGE_ERR_REPLICA: 'Messages are being delivered again from where you were; nothing is missing.',
  TISSUE_ERR_UNAVAILABLE: 'The service is busy or restarting. Try again in a moment.',
  TISSUE_ERR_BAD_REQUEST: 'The server could not read a login or registration step from this app. Reload the page and try again.',
  CELL_ERR_REMOTE: 'Something failed on the server. Try again.',
  // The client's own.
  CLIENT_ERR_OFFLINE: 'Not connected: reconnecting. This will be done once the connection is back.',
  CLIENT_ERR_NO_KEYS: 'That user has not published keys yet, so you cannot write to them.',
  CLIENT_ERR_KEY_CHANGED: 'Their security key changed. Compare safety numbers and accept the new key before you write.',
  CLIENT_ERR_NO_BACKUP: 'This account has no key backup, so its messages cannot be read in this browser.',
  CLIENT_ERR_BACKUP: 'Your key backup did not open with this password.',
  CLIENT_ERR_RECOVERY_KEY: 'Your key backup is sealed with a recovery key: enter it to read your messages in this browser.',
  CLIENT_ERR_RECOVERY_BAD: 'That recovery key does not open your key backup.',
  CLIENT_ERR_LEGACY_DECLINED: 'Nothing was sent. This account can only be upgraded by sending its password to the server once.',
  CLIENT_ERR_LEGACY_LIE: 'The server asked for your password, but this account already logs in without sending it. Nothing was sent: the server may be compromised.',
  CLIENT_ERR_GROUP: 'A group needs a name and 1 or more other members who exist.',
  CLIENT_ERR_UNVERIFIED: 'A message that did not verify was not shown.',
  CLIENT_ERR_GROUP_UNSIGNED: "A group message from someone the group's creator did not list was not shown.",
  CLIENT_ERR_REPLAY: 'A message shown before came again under another number (a replay) and was not shown again.',
  CONTENT_ERR_FORMAT: 'A message arrived in a form this app cannot show.',
  CRYPTO_ERR_SIGNATURE: 'A message whose signature did not verify was not shown.',
  CRYPTO_ERR_DECRYPT: 'A message that could not be decrypted with your key was not shown.',
  CRYPTO_ERR_HEADER: 'A message whose sealed header did not match its delivery (a replay or a forgery) was not shown.',
  CRYPTO_ERR_FORMAT: 'A malformed message was not shown.',
};

/** What each close code means to the person (docs/protocol.md, "Close codes"). */
export const CLOSE_TEXT: Readonly<Record<number, string>> = {
  4000: 'the server moved this connection to another receiver',
  4001: 'the connection was too slow and was reset',
  4002: 'the server closed the connection after bad requests',
  4004: 'this account was deleted',
  4005: 'your session ended (expired, or logged out elsewhere)',
  4008: 'the connection sat idle and was closed',
  1009: 'a request was far too large',
};

export function errorCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'CELL_ERR_REMOTE';
}

/** The words for an error, by its code; an unknown code reads like CELL_ERR_REMOTE. */
export function describeError(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code in ERROR_TEXT) return ERROR_TEXT[code]!;
  const message = (e as { message?: unknown } | null)?.message;
  return typeof message === 'string' && message.length > 0 ? message : ERROR_TEXT['CELL_ERR_REMOTE']!;
}

export class ClientError extends Error {
  constructor(readonly code: string, message?: string) {
    super(message ?? ERROR_TEXT[code] ?? code);
  }
}
