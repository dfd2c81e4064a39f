/**
 * The browser client in real Chromium (Debian's, driven by playwright-core), served by real
 * receivers of a real organism, with people typing into the page: registration, 1:1 and
 * group chats, unread counts, read receipts, deletion, key-change warnings, failover under
 * a burst, a phone-sized screen and the keyboard. Screenshots go to test-artifacts/.
 * After the chats, the JetStream store and every NATS message seen by a wildcard
 * subscription are scanned for the plaintext typed in the pages.
 */
import test, { type ExecutionContext } from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { generateIdentity, keyId, open, peekSenderKeyId, seal } from '../../client/crypto/envelope.ts';
import { encodeContent } from '../../client/app/content.ts';
import { logIn, registerAccount } from '../../client/app/account.ts';
import { signRoster } from '../../client/crypto/group-roster.ts';
import { backupKeys } from '../../client/crypto/key-backup.ts';
import { openMessengerStores } from '../../cells/messenger/stores.ts';
import { scryptHasher } from '../../cells/worker/password.ts';
import { decode, encode } from 'msgpackr';
import { ChatClient } from '../helpers/chat-client.ts';
import { launch, shot } from '../helpers/browser.ts';
import { until } from '../helpers/grow.ts';
import { liveReceivers, messengerGenome, startOrganism } from '../helpers/organism.ts';


/** An organism of receivers and a worker on its own port range (cheap scrypt), stopped in teardown. */
async function messenger(t: ExecutionContext, sets: string[] = []) {
  const { genome } = messengerGenome(sets);
  const { o, nats } = await startOrganism(t, genome);
  // Every NATS message of the run, for the plaintext scan.
  const nc = await connect({ servers: nats.url });
  const wire: Uint8Array[] = [];
  nc.subscribe('>', { callback: (_e, m) => void wire.push(m.data) });
  t.teardown(() => nc.close());
  await o.waitForPopulation();
  const receivers = () => liveReceivers(o);
  await until(() => receivers().length >= genome.tissues.receiver!.min, 10_000, 'receivers with a URL');
  /** Neither the store nor anything that crossed NATS holds any of `markers`. */
  const scan = async (t: ExecutionContext, markers: string[]) => {
    await nc.flush();
    const files: string[] = [];
    const walk = (d: string) => {
      for (const f of readdirSync(d)) (statSync(join(d, f)).isDirectory() ? walk(join(d, f)) : files.push(join(d, f)));
    };
    walk(join(dirname(nats.configPath), 'jetstream'));
    const bytes = files.map((f) => readFileSync(f));
    for (const marker of markers) {
      t.false(bytes.some((b) => b.includes(marker)), `"${marker}" is not in the store`);
      t.false(wire.some((m) => Buffer.from(m.buffer, m.byteOffset, m.byteLength).includes(marker)), `"${marker}" never crossed NATS`);
    }
    t.true(bytes.some((b) => b.includes('Cm-From')), 'the scan saw stored messages');
    t.true(wire.length > markers.length, `the wildcard subscription saw the traffic (${wire.length} messages)`);
  };
  return { o, nats, receivers, url: receivers()[0]!.url!, scan };
}


let shots = 0;

/**
 * Values at dot-paths of one record in the page's IndexedDB (`cellular`), read in the page:
 * what the client keeps, as it keeps it (a CryptoKey's properties included).
 */
function idbFields(page: Page, store: string, key: string, paths: string[]): Promise<unknown[]> {
  return page.evaluate(
    ([store, key, paths]) =>
      new Promise<unknown[]>((resolve, reject) => {
        // (Runs in the page; this file is compiled without the DOM library.)
        const r = (globalThis as unknown as { indexedDB: any }).indexedDB.open('cellular');
        r.onerror = () => reject(new Error('no database'));
        r.onsuccess = () => {
          const get = r.result.transaction(store).objectStore(store).get(key);
          get.onsuccess = () => resolve(paths.map((p) => p.split('.').reduce((o: any, k) => o?.[k], get.result)));
        };
      }),
    [store, key, paths] as const,
  );
}

/** A person in a browser of their own (own context, own storage). */
class Person {
  constructor(readonly name: string, readonly page: Page) {}

  static async open(t: ExecutionContext, browser: Browser | BrowserContext, url: string, name: string, problems: string[], options: { consoleErrors?: boolean; beforeLoad?: (page: Page) => void } = {}): Promise<Person> {
    const page = await browser.newPage();
    options.beforeLoad?.(page);
    // A failed test leaves a picture of every page it used.
    t.teardown(async () => {
      if (!t.passed) await shot(page, `failed-${t.title.slice(10, 40).replace(/\W+/g, '-')}-${name}-${++shots}`);
    });
    if (options.consoleErrors !== false) page.on('console', (m) => m.type() === 'error' && problems.push(`${name} console: ${m.text()}`));
    page.on('pageerror', (e) => problems.push(`${name} page error: ${e.message}`));
    await page.goto(`${url}/`);
    await page.waitForSelector('#status[data-state=connected]');
    return new Person(name, page);
  }

  /** Registers (or logs in) and waits for the messenger. */
  async enter(how: 'register' | 'login', password = `pw-${this.name}-in-the-browser`): Promise<this> {
    await this.page.fill('#user', this.name);
    await this.page.fill('#password', password);
    await this.page.click(how === 'register' ? '#register' : '#login');
    await this.page.waitForSelector(`#status[data-user=${this.name}]`, { timeout: 20_000 });
    return this;
  }

  /** Opens the 1:1 chat with `user` from the people search, by keyboard. */
  async chatWith(user: string): Promise<void> {
    await this.page.fill('#find', user);
    await this.page.press('#find', 'Enter');
    await this.page.waitForSelector(`#conversations button[data-conv="u:${user}"][aria-current=true]`);
  }

  async open(conv: string): Promise<void> {
    await this.page.click(`#conversations button[data-conv="${conv}"]`);
    await this.page.waitForSelector(`#conversations button[data-conv="${conv}"][aria-current=true]`);
  }

  /** Types a message in the open conversation and presses Enter. */
  async say(text: string, wait = true): Promise<void> {
    await this.page.fill('#text', text);
    await this.page.press('#text', 'Enter');
    if (wait) await this.page.waitForSelector(`#messages li.mine .text:text-is("${text}")`);
  }

  async texts(selector = '#messages li .text'): Promise<string[]> {
    return this.page.locator(selector).allTextContents();
  }

  /** Every message of the open conversation: "Earlier messages" until there are none. */
  async allTexts(selector = '#messages li .text'): Promise<string[]> {
    for (let i = 0; i < 100 && (await this.page.locator('#earlier').isVisible()); i++) await this.page.click('#earlier');
    return this.texts(selector);
  }
}

test.serial('browser - the client page loads under the CSP with SRI, connects to its receiver and says which cell answered, without a console error', async (t) => {
  const m = await messenger(t);
  const receiver = m.receivers()[0]!;

  const browser = await launch(t);
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  const response = await page.goto(`${receiver.url}/`);
  t.is(response?.status(), 200);
  t.regex(response?.headers()['content-security-policy'] ?? '', /script-src 'self'/);
  t.regex(await page.locator('script[type=module]').getAttribute('integrity') ?? '', /^sha384-/, 'the bundle carries its SRI hash');
  await page.waitForSelector('#status[data-state=connected]', { timeout: 10_000 });
  await shot(page, 'login');
  t.regex((await page.textContent('#status')) ?? '', new RegExp(`connected to ${receiver.id} \\(1 receiver live\\)`));
  // A receiver born now is pushed to the page ("receivers"): it could fail over to it.
  const born = await m.o.spawn('receiver');
  await page.waitForSelector('#status[data-receivers="2"]', { timeout: 10_000 });
  process.kill(born.pid, 'SIGKILL');
  await page.waitForSelector('#status[data-receivers="1"]', { timeout: 10_000 });
  t.is(await page.getAttribute('#status', 'data-state'), 'connected', 'its own receiver still serves it');
  t.deepEqual(problems, []);
});

test.serial('browser - two people find each other and chat both ways: unread counts, read receipts, delete for me and for everyone; no plaintext reaches the store or NATS', async (t) => {
  const m = await messenger(t);
  const browser = await launch(t);
  const problems: string[] = [];
  const alice = await (await Person.open(t, await browser.newContext(), m.url, 'alice', problems)).enter('register');
  const bob = await (await Person.open(t, await browser.newContext(), m.url, 'bob', problems)).enter('register');
  const tag = Math.random().toString(36).slice(2);
  const markers = [`hello bob, plaintext one ${tag}`, `plaintext two ${tag}`, `and back to alice ${tag}`];

  await alice.chatWith('bob');
  await alice.say(markers[0]!);
  await alice.say(markers[1]!);
  // Bob is not looking at that chat: it shows up with 2 unread.
  await bob.page.waitForSelector('#conversations button[data-conv="u:alice"][data-unread="2"]');
  await shot(bob.page, 'chat-bob-unread');
  await t.throwsAsync(alice.page.waitForSelector('#messages li.mine .meta[data-state=read]', { timeout: 300 }), undefined, 'not read yet');
  await bob.open('u:alice');
  t.deepEqual(await bob.texts('#messages li.theirs .text'), markers.slice(0, 2));
  await bob.page.waitForSelector('#conversations button[data-conv="u:alice"][data-unread="0"]');
  // One receipt for the newest stands for both.
  await until(async () => (await alice.page.locator('#messages li.mine .meta[data-state=read]').count()) === 2, 10_000, 'both read');
  await bob.say(markers[2]!);
  await alice.page.waitForSelector(`#messages li.theirs .text:text-is("${markers[2]}")`);
  await shot(alice.page, 'chat-alice');

  // Delete for everyone: gone on both sides (a tombstone); delete for me: gone on one side only.
  await alice.page.click(`#messages li.mine:has(.text:text-is("${markers[0]}")) button.delete-all`);
  await bob.page.waitForSelector('#messages li.theirs.deleted');
  t.deepEqual(await bob.texts('#messages li.theirs .text'), ['This message was deleted.', markers[1]]);
  await bob.page.click(`#messages li.theirs:has(.text:text-is("${markers[1]}")) button.delete-me`);
  await until(async () => (await bob.texts('#messages li.theirs .text')).length === 1, 5_000, 'deleted for bob');
  t.deepEqual(await alice.texts('#messages li .text'), ['This message was deleted.', markers[1], markers[2]], 'alice still has it');
  await shot(alice.page, 'chat-alice-deleted');

  // Presence: each lists the other, both online.
  await alice.page.waitForSelector('#conversations button[data-conv="u:bob"] .presence[data-online=true]');
  t.deepEqual(problems, []);
  await m.scan(t, markers);
});

test.serial('browser - a replayed message is dropped: the same id again is shown once, and its body under another id is refused by the sealed header', async (t) => {
  const m = await messenger(t, ['messenger.dedupeWindowMs=1000']);
  const browser = await launch(t);
  const problems: string[] = [];
  const jay = await (await Person.open(t, await browser.newContext(), m.url, 'jay', problems)).enter('register');
  const kim = await (await Person.open(t, await browser.newContext(), m.url, 'kim', problems)).enter('register');
  await jay.chatWith('kim');
  await jay.say('say it once');
  await kim.open('u:jay');
  await kim.page.waitForSelector('#messages li.theirs .text:text-is("say it once")');
  // What the server holds, as kim may read it; then jay's account sends the very bytes again.
  const asKim = await ChatClient.connect(m.url);
  const asJay = await ChatClient.connect(m.url);
  t.teardown(() => (asKim.close(), asJay.close()));
  await logIn(asKim, 'kim', 'pw-kim-in-the-browser');
  const history = (await asKim.request({ t: 'history' })) as unknown as { messages: { msg: string; from: string; body: Uint8Array }[] };
  const original = history.messages.find((x) => x.from === 'jay')!;
  await logIn(asJay, 'jay', 'pw-jay-in-the-browser');
  await new Promise((r) => setTimeout(r, 1_500)); // past the server's dedupe window: it stores the replay
  await asJay.request({ t: 'send', msg: original.msg, to: 'kim', body: original.body });
  await asJay.request({ t: 'send', msg: 'replayed-under-a-new-id', to: 'kim', body: original.body });
  await kim.page.waitForSelector('#problem[data-code=CRYPTO_ERR_HEADER]');
  await jay.say('and after the replays');
  await kim.page.waitForSelector('#messages li.theirs .text:text-is("and after the replays")');
  t.deepEqual(await kim.texts('#messages li.theirs .text'), ['say it once', 'and after the replays'], 'the replays were not shown');
  t.deepEqual(problems, []);
});

test.serial('browser - a group of three: everyone sees every message once, with its sender, and receipts count readers', async (t) => {
  const m = await messenger(t);
  const browser = await launch(t);
  const problems: string[] = [];
  const [ann, ben, cy] = await Promise.all(['ann', 'ben', 'cyd'].map(async (n) => (await Person.open(t, await browser.newContext(), m.url, n, problems)).enter('register')));
  await ann!.page.click('#new-group');
  await ann!.page.fill('#group-name', 'trip');
  await ann!.page.fill('#group-members', 'ben, cyd');
  await ann!.page.press('#group-members', 'Enter');
  await ann!.page.waitForSelector('#conv-title:text-is("trip (3)")');
  await ann!.say('who brings the tent');
  for (const p of [ben!, cy!]) {
    await p.page.waitForSelector('#conversations button .title:text-is("# trip")');
    await p.page.click('#conversations button:has(.title:text-is("# trip"))');
    await p.page.waitForSelector('#messages li.theirs[data-from=ann] .text:text-is("who brings the tent")');
  }
  await until(async () => ((await ann!.page.textContent('#messages li.mine .meta')) ?? '').includes('read by 2/2'), 10_000, 'read by both');
  await cy!.say('I do');
  await ben!.page.waitForSelector('#messages li.theirs[data-from=cyd] .text:text-is("I do")');
  await ann!.page.waitForSelector('#messages li.theirs[data-from=cyd] .text:text-is("I do")');
  t.deepEqual(await ben!.texts(), ['who brings the tent', 'I do']);
  t.is(await ben!.page.textContent('#messages li[data-from=cyd] .from'), 'cyd', 'a group message names its sender');
  await shot(ben!.page, 'group-ben');
  t.deepEqual(problems, []);
  await m.scan(t, ['who brings the tent']);
});

test.serial('browser - when a contact\'s key changes, the chat warns and blocks until the person accepts; what the new key signed waits until then; safety numbers match on both sides', async (t) => {
  const m = await messenger(t);
  const browser = await launch(t);
  const problems: string[] = [];
  const dee = await (await Person.open(t, await browser.newContext(), m.url, 'dee', problems)).enter('register');
  const eli = await (await Person.open(t, await browser.newContext(), m.url, 'eli', problems)).enter('register');
  await dee.chatWith('eli');
  await dee.say('first, with the old key');
  await eli.open('u:dee');
  // The same safety number on both sides.
  await dee.page.click('#safety-toggle');
  await eli.page.click('#safety-toggle');
  const number = await dee.page.textContent('#safety-panel .safety-number[data-user=eli]');
  t.regex(number ?? '', /^(\d{5} ){11}\d{5}$/);
  t.is(await eli.page.textContent('#safety-panel .safety-number[data-user=dee]'), number);

  // Eli's keys are replaced (a reinstall, or someone in between): new keys published, and a message signed with them.
  const c = await ChatClient.connect(m.url);
  t.teardown(() => c.close());
  const { grant } = (await logIn(c, 'eli', 'pw-eli-in-the-browser', { grant: true })).session;
  const fresh = generateIdentity();
  await c.request({ t: 'keys.publish', x25519: fresh.x25519.publicKey, ed25519: fresh.ed25519.publicKey, grant });
  const deeKeys = (await c.request({ t: 'keys.get', users: ['dee'] })) as unknown as { keys: { x25519: Uint8Array }[] };
  const msg = 'rekeyed-message-0001';
  const header = { v: 1 as const, from: 'eli', to: 'dee', msg, at: Date.now(), members: ['dee', 'eli'], senderKeyId: keyId(fresh.ed25519.publicKey), recipientKeyId: keyId(deeKeys.keys[0]!.x25519) };
  const body = seal({ plaintext: encodeContent({ v: 1, text: 'signed with the new key' }), header, sender: fresh, recipientX25519: deeKeys.keys[0]!.x25519 });
  await c.request({ t: 'send', msg, to: 'dee', body });

  await dee.page.waitForSelector('#key-warning:not([hidden]) button.accept-key[data-user=eli]');
  t.regex((await dee.page.textContent('#key-warning')) ?? '', /eli's security key has changed.*1 message signed with the new key waits/);
  t.true(await dee.page.locator('#text').isDisabled(), 'sending is blocked');
  t.deepEqual(await dee.texts(), ['first, with the old key'], 'the new key\'s message is held');
  const changed = await dee.page.textContent('#safety-panel .safety-number[data-user=eli]');
  t.not(changed, number, 'the safety number changed with the key');
  await shot(dee.page, 'key-change-warning');
  await dee.page.click('button.accept-key[data-user=eli]');
  await dee.page.waitForSelector('#messages li.theirs .text:text-is("signed with the new key")');
  t.true(await dee.page.locator('#key-warning').isHidden());
  t.false(await dee.page.locator('#text').isDisabled(), 'sending is open again');
  t.deepEqual(problems, []);
});

test.serial('browser - on a phone-sized screen one pane shows at a time, nothing overflows, and the keyboard drives it; every error says what happened', async (t) => {
  const m = await messenger(t);
  const browser = await launch(t);
  const problems: string[] = [];
  await (await Person.open(t, await browser.newContext(), m.url, 'fay', problems)).enter('register');
  const phone = await browser.newContext({ viewport: { width: 375, height: 700 }, isMobile: true, hasTouch: true });
  const gus = await Person.open(t, phone, m.url, 'gus', problems);
  // Errors by code, in words.
  await gus.page.fill('#user', 'gus');
  await gus.page.fill('#password', 'short');
  await gus.page.click('#register');
  await gus.page.waitForSelector('#login-problem[data-code=ACCOUNT_ERR_PASSWORD]');
  t.regex((await gus.page.textContent('#login-problem')) ?? '', /at least 8 characters/);
  await gus.page.fill('#user', 'fay');
  await gus.page.fill('#password', 'a-long-enough-password');
  await gus.page.click('#register');
  await gus.page.waitForSelector('#login-problem[data-code=ACCOUNT_ERR_EXISTS]');
  await gus.page.click('#login');
  await gus.page.waitForSelector('#login-problem[data-code=AUTH_ERR_CREDENTIALS]');
  t.is(await gus.page.textContent('#login-problem'), 'Wrong user name or password.');
  await gus.enter('register');

  const overflow = () => gus.page.evaluate(() => {
    const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document;
    return d.documentElement.scrollWidth - d.documentElement.clientWidth;
  });
  t.is(await overflow(), 0, 'no sideways scrolling on the list');
  t.true(await gus.page.locator('#sidebar').isVisible());
  t.true(await gus.page.locator('#conversation').isHidden());
  // "/" goes to the search; Enter opens the chat; Enter sends; Escape goes back.
  await gus.page.click('h1');
  await gus.page.keyboard.press('/');
  t.is(await gus.page.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } } }).document.activeElement.id), 'find');
  await gus.page.keyboard.type('nobody-here');
  await gus.page.keyboard.press('Enter');
  await gus.page.waitForSelector('#problem[data-code=CLIENT_ERR_NO_KEYS]');
  await gus.page.fill('#find', '');
  await gus.page.keyboard.type('fay');
  await gus.page.keyboard.press('Enter');
  await gus.page.waitForSelector('#shell[data-view=conv]');
  t.true(await gus.page.locator('#sidebar').isHidden(), 'one pane at a time');
  await gus.page.keyboard.type('typed on a phone, sent with Enter, and a long line that must wrap instead of widening the page');
  await gus.page.keyboard.press('Enter');
  await gus.page.waitForSelector('#messages li.mine .meta[data-state=sent]');
  t.is(await overflow(), 0, 'no sideways scrolling in a chat');
  await shot(gus.page, 'phone-chat');
  await gus.page.keyboard.press('Escape');
  await gus.page.waitForSelector('#shell[data-view=list]');
  t.is(await gus.page.evaluate(() => (globalThis as unknown as { document: { activeElement: { dataset: { conv?: string } } } }).document.activeElement.dataset.conv), 'u:fay', 'focus returns to the chat in the list');
  await shot(gus.page, 'phone-list');
  t.deepEqual(problems, []);
});

test.serial('browser - kill -9 of the receiver both are on, in the middle of a burst of 200: both keep chatting, every message shown once and in order; a third browser logs in and reads the history', async (t) => {
  const m = await messenger(t, ['tissues.receiver.min=2', 'tissues.receiver.max=2']);
  const [a] = m.receivers();
  const browser = await launch(t);
  const problems: string[] = [];
  // A page whose receiver dies logs its failed reconnection attempts as console errors.
  const hal = await (await Person.open(t, await browser.newContext(), a!.url!, 'hal', problems, { consoleErrors: false })).enter('register');
  const ida = await (await Person.open(t, await browser.newContext(), a!.url!, 'ida', problems, { consoleErrors: false })).enter('register');
  await hal.chatWith('ida');
  await hal.say('hello before the burst');
  await ida.open('u:hal');
  const burst = Array.from({ length: 200 }, (_, i) => `burst ${String(i).padStart(3, '0')}`);
  for (const [i, text] of burst.entries()) {
    if (i === 100) process.kill(a!.pid, 'SIGKILL');
    await hal.say(text, false);
  }
  await hal.page.waitForSelector(`#status[data-state=connected]:not([data-cell="${a!.id}"])`, { timeout: 15_000 });
  await ida.page.waitForSelector(`#status[data-state=connected]:not([data-cell="${a!.id}"])`, { timeout: 15_000 });
  await ida.say('got them all?');
  await hal.page.waitForSelector('#messages li.theirs .text:text-is("got them all?")', { timeout: 20_000 });
  await ida.page.waitForSelector(`#messages li.theirs .text:text-is("${burst.at(-1)}")`, { timeout: 30_000 });
  const expected = ['hello before the burst', ...burst];
  t.deepEqual(await ida.allTexts('#messages li.theirs .text'), expected, 'every message once, in order');
  t.deepEqual((await hal.allTexts('#messages li.mine .text')), expected, 'the sender shows each once, all sent');
  await until(async () => (await hal.page.locator('#messages li.mine .meta[data-state=sending]').count()) === 0, 20_000, 'all acknowledged');
  const failovers = (await ida.page.getAttribute('#status', 'data-failovers')) ?? '';
  t.log(`failover (socket lost → session resumed) seen by the pages: ida ${failovers} ms, hal ${await hal.page.getAttribute('#status', 'data-failovers')} ms`);
  // At least once (the kill); a second move is allowed, a lost or doubled message is not.
  t.regex(failovers, /^\d+(,\d+)*$/, 'ida failed over');
  await shot(ida.page, 'failover-ida');

  // A third browser: the password opens the key backup, and the history comes from the server.
  const again = await (await Person.open(t, await browser.newContext(), m.receivers()[0]!.url!, 'ida', problems)).enter('login', 'pw-ida-in-the-browser');
  t.is(await again.page.getAttribute('#status', 'data-keys'), 'backup');
  await again.page.waitForSelector('#conversations button[data-conv="u:hal"]');
  await again.open('u:hal');
  await again.page.waitForSelector(`#messages li .text:text-is("got them all?")`);
  t.deepEqual(await again.allTexts('#messages li .text'), [...expected, 'got them all?'], 'the whole conversation, both sides, once each, in order');
  await shot(again.page, 'history-third-browser');
  t.deepEqual(problems, []);
  await m.scan(t, ['hello before the burst', 'got them all?']);
});

test.serial('browser - private keys rest in IndexedDB under a non-extractable WebCrypto key; the same browser reopens them, another browser restores them from the backup', async (t) => {
  const m = await messenger(t);
  const browser = await launch(t);
  const problems: string[] = [];
  const homeContext = await browser.newContext();
  const home = await (await Person.open(t, homeContext, m.url, 'wren', problems)).enter('register');
  t.is(await home.page.getAttribute('#status', 'data-keys'), 'new');
  // What IndexedDB holds: an opaque key handle and 80 bytes of ciphertext (64 + the GCM tag).
  t.deepEqual(await idbFields(home.page, 'identities', 'wren', ['key.extractable', 'key.algorithm.name', 'sealed.byteLength']), [false, 'AES-GCM', 80]);
  // The same browser, a new page: the keys open from its own store.
  const again = await (await Person.open(t, homeContext, m.url, 'wren', problems)).enter('login');
  t.is(await again.page.getAttribute('#status', 'data-keys'), 'this browser');
  // Another browser: from the server's sealed backup, with the password.
  const elsewhere = await (await Person.open(t, await browser.newContext(), m.url, 'wren', problems)).enter('login');
  t.is(await elsewhere.page.getAttribute('#status', 'data-keys'), 'backup');
  t.deepEqual(problems, []);
});

/** Every WebSocket frame `page` sends, as bytes. */
function framesSent(page: Page): Buffer[] {
  const sent: Buffer[] = [];
  page.on('websocket', (ws) => ws.on('framesent', (f) => void sent.push(Buffer.isBuffer(f.payload) ? f.payload : Buffer.from(f.payload))));
  return sent;
}

test.serial('browser - the password never leaves the page; a recovery key, shown once, is what opens the backup in another browser (the password alone does not)', async (t) => {
  const m = await messenger(t);
  const browser = await launch(t);
  const problems: string[] = [];
  const password = 'pw-yan-never-sent';
  // Everything on the broker too, as a cell holding the broker token would see it.
  const wire: Buffer[] = [];
  const sub = m.o.observer.nc.subscribe('>', { callback: (_e, msg) => void wire.push(Buffer.from(msg.data)) });
  t.teardown(() => sub.unsubscribe());
  let sent: Buffer[] = [];
  const yan = await Person.open(t, await browser.newContext(), m.url, 'yan', problems, { beforeLoad: (p) => void (sent = framesSent(p)) });
  await yan.page.fill('#user', 'yan');
  await yan.page.fill('#password', password);
  await yan.page.check('#use-recovery-key');
  await yan.page.click('#register');
  const shown = (await yan.page.textContent('#recovery-shown p', { timeout: 20_000 })) ?? '';
  const recoveryKey = /([a-z2-7]{4}(?:-[a-z2-7]{4}){13})/.exec(shown)?.[1];
  t.truthy(recoveryKey, shown);
  await yan.page.click('#recovery-shown button[data-answer=kept]');
  await yan.page.waitForSelector('#status[data-user=yan]');
  t.true(sent.length >= 3, `${sent.length} frames sent`);
  t.false(sent.some((f) => f.includes(password)), 'no frame carries the password');
  t.is(await yan.page.locator('#recovery-shown').count(), 0, 'shown once, then gone');

  // Another browser: the password logs in, but the backup asks for the recovery key.
  let sentThere: Buffer[] = [];
  const other = await Person.open(t, await browser.newContext(), m.url, 'yan', problems, { beforeLoad: (p) => void (sentThere = framesSent(p)) });
  await other.page.fill('#user', 'yan');
  await other.page.fill('#password', password);
  await other.page.click('#login');
  await other.page.fill('#recovery-key', 'abcd-efgh');
  await other.page.click('#recovery-ask button[data-answer=ok]');
  await other.page.waitForSelector('#login-problem[data-code=CLIENT_ERR_RECOVERY_BAD]');
  await other.page.click('#login');
  await other.page.fill('#recovery-key', recoveryKey!.toUpperCase().replace(/-/g, ' '));
  await other.page.click('#recovery-ask button[data-answer=ok]');
  await other.page.waitForSelector('#status[data-user=yan]', { timeout: 20_000 });
  t.is(await other.page.getAttribute('#status', 'data-keys'), 'backup');
  t.false(sentThere.some((f) => f.includes(password) || f.includes(recoveryKey!)), 'neither the password nor the recovery key was sent');
  await m.o.observer.nc.flush();
  t.true(wire.length > 20, `${wire.length} NATS messages seen`);
  t.false(wire.some((w) => w.includes(password) || w.includes(recoveryKey!)), 'nor did either cross NATS');
  t.deepEqual(problems, []);
});

test.serial('browser - an account from before OPAQUE: the page asks before the password goes to the server, once; after the upgrade it never does again', async (t) => {
  const m = await messenger(t);
  const browser = await launch(t);
  const problems: string[] = [];
  const password = 'pw-old-account-zed';
  const stores = await openMessengerStores(m.o.observer.nc, m.o.observer.ns);
  const identity = generateIdentity();
  await stores.accounts.put('u.zed', encode({ v: 1, user: 'zed', hash: await scryptHasher.hash(password, { logN: 12, r: 8, p: 1 }), created: Date.now() }));
  await stores.directory.put('u.zed', encode({ v: 1, user: 'zed', x25519: identity.x25519.publicKey, ed25519: identity.ed25519.publicKey, at: Date.now() }));
  await stores.directory.put('b.zed', encode({ v: 1, user: 'zed', blob: await backupKeys(identity, 'zed', password, { logN: 10, r: 8, p: 1 }), at: Date.now() }));
  let sent: Buffer[] = [];
  const zed = await Person.open(t, await browser.newContext(), m.url, 'zed', problems, { beforeLoad: (p) => void (sent = framesSent(p)) });
  await zed.page.fill('#user', 'zed');
  await zed.page.fill('#password', password);
  await zed.page.click('#login');
  t.regex((await zed.page.textContent('#legacy-confirm p')) ?? '', /sent to the server one last time/);
  await zed.page.click('#legacy-confirm button[data-answer=no]');
  await zed.page.waitForSelector('#login-problem[data-code=CLIENT_ERR_LEGACY_DECLINED]');
  t.false(sent.some((f) => f.includes(password)), 'declined: not sent');
  await zed.page.click('#login');
  await zed.page.click('#legacy-confirm button[data-answer=yes]');
  await zed.page.waitForSelector('#status[data-user=zed]', { timeout: 20_000 });
  await zed.page.waitForSelector('#upgraded');
  t.is(sent.filter((f) => f.includes(password)).length, 1, 'sent once, to upgrade');
  t.is(await zed.page.getAttribute('#status', 'data-keys'), 'backup', 'the old backup opened with the password');
  // Another browser: OPAQUE, no question, and the new backup opens.
  let sentThere: Buffer[] = [];
  const other = await Person.open(t, await browser.newContext(), m.url, 'zed', problems, { beforeLoad: (p) => void (sentThere = framesSent(p)) });
  await other.enter('login', password);
  t.is(await other.page.locator('#legacy-confirm').count(), 0);
  t.is(await other.page.getAttribute('#status', 'data-keys'), 'backup');
  t.false(sentThere.some((f) => f.includes(password)));
  t.deepEqual(problems, []);
});

test.serial('browser - a directory that swaps only the X25519 key (the Ed25519 kept) is caught: the chat blocks, nothing is sealed to the new key until the person accepts, and the verified mark is lost', async (t) => {
  const m = await messenger(t);
  const browser = await launch(t);
  const problems: string[] = [];
  const home = await browser.newContext();
  const dee = await (await Person.open(t, home, m.url, 'dee', problems)).enter('register');
  const eli = await (await Person.open(t, await browser.newContext(), m.url, 'eli', problems)).enter('register');
  await dee.chatWith('eli');
  await dee.say('before the swap');
  await eli.open('u:dee');
  await dee.page.click('#safety-toggle');
  await dee.page.click('#safety-panel button.mark-verified[data-user=eli]');
  await dee.page.waitForSelector('#safety-panel button.mark-verified[data-user=eli][data-verified=true]');
  const number = await dee.page.textContent('#safety-panel .safety-number[data-user=eli]');

  // The attack: a cell holding the broker token rewrites eli's directory entry, keeping the Ed25519 key.
  const stores = await openMessengerStores(m.o.observer.nc, m.o.observer.ns);
  const entry = decode((await stores.directory.get('u.eli'))!.value) as { x25519: Uint8Array; ed25519: Uint8Array };
  const attacker = generateIdentity();
  await stores.directory.put('u.eli', encode({ v: 1, user: 'eli', x25519: attacker.x25519.publicKey, ed25519: entry.ed25519, at: Date.now() }));

  // dee comes back (a new page: the directory is read afresh) and writes to eli.
  const again = await (await Person.open(t, home, m.url, 'dee', problems)).enter('login');
  await again.open('u:eli');
  await again.page.fill('#text', 'must not reach the swapped key');
  await again.page.press('#text', 'Enter');
  await again.page.waitForSelector('#key-warning:not([hidden]) button.accept-key[data-user=eli]');
  t.true(await again.page.locator('#text').isDisabled(), 'sending is blocked');
  await again.page.click('#safety-toggle');
  await again.page.waitForSelector('#safety-panel .safety-number[data-user=eli]'); // painted on the next frame
  t.regex((await again.page.textContent('#safety-panel')) ?? '', /With eli \(new key\)/);
  t.not(await again.page.textContent('#safety-panel .safety-number[data-user=eli]'), number, 'the safety number covers the X25519 key too');
  t.is(await again.page.getAttribute('#safety-panel button.mark-verified[data-user=eli]', 'data-verified'), 'false', 'a pending key change is not verified');
  // Nothing in eli's inbox opens with the attacker's key.
  const asEli = await ChatClient.connect(m.url);
  t.teardown(() => asEli.close());
  await logIn(asEli, 'eli', 'pw-eli-in-the-browser');
  const inbox = ((await asEli.request({ t: 'history' })) as unknown as { messages: { body: Uint8Array; from: string }[] }).messages.filter((x) => x.from === 'dee');
  t.true(inbox.length >= 1);
  for (const copy of inbox) t.throws(() => open({ sealed: copy.body, recipient: attacker, senderEd25519: (entry as { ed25519: Uint8Array }).ed25519 }));
  t.false(inbox.some((copy) => peekSenderKeyId(copy.body) === null), 'every copy is an envelope');
  // Accepting pins the new identity, unverified.
  await again.page.click('button.accept-key[data-user=eli]');
  await again.page.waitForSelector('#key-warning', { state: 'hidden' });
  t.is(await again.page.getAttribute('#safety-panel button.mark-verified[data-user=eli]', 'data-verified'), 'false', 'the mark was for the old identity');
  t.deepEqual(problems.filter((p) => !/CLIENT_ERR_KEY_CHANGED|security key changed/.test(p)), []);
});

test.serial('browser - the page connects only to the organism\'s own receivers: a foreign address pushed by a hostile cell is dropped, and the CSP names the receivers\' ports and nothing else', async (t) => {
  const m = await messenger(t);
  const browser = await launch(t);
  const problems: string[] = [];
  const sockets: string[] = [];
  const ada = await (await Person.open(t, await browser.newContext(), m.url, 'ada', problems, { beforeLoad: (p) => p.on('websocket', (ws) => void sockets.push(ws.url())) })).enter('register');
  const response = await ada.page.request.get(`${m.url}/`);
  const csp = response.headers()['content-security-policy'] ?? '';
  const connect = /connect-src ([^;]+)/.exec(csp)?.[1]?.split(' ') ?? [];
  t.true(connect.includes("'self'"));
  t.false(connect.some((s) => s === 'ws:' || s === 'wss:' || s.endsWith(':*')), `no wildcard in ${connect.slice(0, 6).join(' ')}…`);
  const host = new URL(m.url).hostname;
  t.true(connect.filter((s) => s !== "'self'").every((s) => new URL(s).hostname === host), 'only the page\'s own host');
  t.true(connect.includes(`ws://${host}:${new URL(m.url).port}`));
  // A hostile cell (it holds the broker token) pushes "moved" and "receivers" naming its own address into ada's events.
  const { encodeServerFrame } = await import('../../organism/wire/frames.ts');
  const { MessengerSubjects } = await import('../../cells/messenger/subjects.ts');
  const subject = new MessengerSubjects(m.o.observer.ns).userEvents('ada');
  m.o.observer.nc.publish(subject, encodeServerFrame({ v: 1, t: 'moved', receivers: ['http://10.9.9.9:8101'] }));
  m.o.observer.nc.publish(subject, encodeServerFrame({ v: 1, t: 'receivers', receivers: ['http://10.9.9.9:8101'] }));
  await m.o.observer.nc.flush();
  // And should a list reach the page, the browser itself refuses a socket to a foreign host.
  const refused = await ada.page.evaluate(
    () =>
      new Promise<string>((resolve) => {
        const g = globalThis as unknown as { addEventListener: (e: string, f: (ev: { blockedURI: string }) => void) => void; WebSocket: new (u: string) => unknown };
        g.addEventListener('securitypolicyviolation', (ev) => resolve(ev.blockedURI));
        try {
          new g.WebSocket('ws://10.9.9.9:8101/ws');
        } catch (e) {
          resolve(`threw: ${(e as Error).message}`);
        }
        setTimeout(() => resolve('allowed'), 2_000);
      }),
  );
  t.not(refused, 'allowed', 'the CSP blocks a socket to another host');
  await ada.page.waitForTimeout(500);
  t.is(await ada.page.getAttribute('#status', 'data-state'), 'connected', 'still on its receiver');
  t.false(sockets.some((u) => u.includes('10.9.9.9')), `sockets opened: ${sockets.join(', ')}`);
  t.deepEqual(problems.filter((p) => !/Content Security Policy|10\.9\.9\.9/.test(p)), []);
});

test.serial('browser - a group accepts only what its creator\'s signed membership lists: a stranger\'s copies (no roster, or one signed by the stranger) are not shown, and a stranger in a header becomes no contact', async (t) => {
  const m = await messenger(t);
  const browser = await launch(t);
  const problems: string[] = [];
  const [ann, ben] = await Promise.all(['ann', 'ben'].map(async (n) => (await Person.open(t, await browser.newContext(), m.url, n, problems)).enter('register')));
  await ann!.page.click('#new-group');
  await ann!.page.fill('#group-name', 'club');
  await ann!.page.fill('#group-members', 'ben');
  await ann!.page.press('#group-members', 'Enter');
  await ann!.say('members only');
  await ben!.page.click('#conversations button:has(.title:text-is("# club"))');
  await ben!.page.waitForSelector('#messages li.theirs[data-from=ann] .text:text-is("members only")');
  // eve: a registered user who learned the group id (the server sees it on every copy).
  const eve = await ChatClient.connect(m.url);
  t.teardown(() => eve.close());
  const eveId = generateIdentity();
  await registerAccount(eve, 'eve', 'pw-eve-the-stranger', eveId);
  const stores = await openMessengerStores(m.o.observer.nc, m.o.observer.ns);
  const benKeys = decode((await stores.directory.get('u.ben'))!.value) as { x25519: Uint8Array };
  const stored = ((await (async () => {
    const asBen = await ChatClient.connect(m.url);
    t.teardown(() => asBen.close());
    await logIn(asBen, 'ben', 'pw-ben-in-the-browser');
    return asBen.request({ t: 'history' });
  })()) as unknown as { messages: { group?: string }[] }).messages;
  const group = stored.find((x) => x.group !== undefined)!.group!;
  const members = ['ann', 'ben', 'eve'];
  const inject = async (msg: string, text: string, roster?: object) => {
    const header = { v: 1 as const, from: 'eve', to: 'ben', msg, at: Date.now(), group, members, senderKeyId: keyId(eveId.ed25519.publicKey), recipientKeyId: keyId(benKeys.x25519) };
    const plaintext = new TextEncoder().encode(JSON.stringify({ v: 1, text, name: 'club', ...(roster ? { roster } : {}) }));
    await eve.request({ t: 'send.group', msg, group, copies: [{ to: 'ben', body: seal({ plaintext, header, sender: eveId, recipientX25519: benKeys.x25519 }) }] });
  };
  await inject('eve-injects-0001', 'no roster at all');
  await ben!.page.waitForSelector('#problem[data-code=CLIENT_ERR_GROUP_UNSIGNED]');
  const forged = signRoster({ v: 1, group, name: 'club', version: 2, members, by: 'eve', at: Date.now() }, eveId.ed25519.secretKey);
  await inject('eve-injects-0002', 'a roster eve signed', forged);
  await ann!.say('still members only');
  await ben!.page.waitForSelector('#messages li.theirs .text:text-is("still members only")');
  t.deepEqual(await ben!.texts('#messages li.theirs .text'), ['members only', 'still members only'], "eve's copies were not shown");
  const [contacts] = (await idbFields(ben!.page, 'profiles', 'ben', ['contacts'])) as [string[]];
  t.false(contacts.includes('eve'), `ben's contacts: ${contacts.join(', ')}`);
  t.deepEqual(problems.filter((p) => !/CLIENT_ERR_GROUP_UNSIGNED|was not shown/.test(p)), []);
});

test.serial('browser - a message deleted for me and then stored again by the server (a replay after its dedupe window) is not shown after a reload', async (t) => {
  const m = await messenger(t, ['messenger.dedupeWindowMs=1000']);
  const browser = await launch(t);
  const problems: string[] = [];
  const home = await browser.newContext();
  const joy = await (await Person.open(t, await browser.newContext(), m.url, 'joy', problems)).enter('register');
  const lux = await (await Person.open(t, home, m.url, 'lux', problems)).enter('register');
  await joy.chatWith('lux');
  await joy.say('once only');
  await lux.open('u:joy');
  await lux.page.waitForSelector('#messages li.theirs .text:text-is("once only")');
  // What the server holds for lu, kept by the attacker; then lu deletes it for herself.
  const asLu = await ChatClient.connect(m.url);
  t.teardown(() => asLu.close());
  await logIn(asLu, 'lux', 'pw-lux-in-the-browser');
  const original = ((await asLu.request({ t: 'history' })) as unknown as { messages: { msg: string; from: string; seq: number; body: Uint8Array }[] }).messages.find((x) => x.from === 'joy')!;
  await lux.page.click('#messages li.theirs:has(.text:text-is("once only")) button.delete-me');
  await until(async () => (await lux.texts('#messages li.theirs .text')).length === 0, 5_000, 'deleted for lux');
  // The server stores the very copy again, past its dedupe window, under a new sequence.
  const asJo = await ChatClient.connect(m.url);
  t.teardown(() => asJo.close());
  await logIn(asJo, 'joy', 'pw-joy-in-the-browser');
  await until(async () => {
    const ack = (await asJo.request({ t: 'send', msg: original.msg, to: 'lux', body: original.body })) as unknown as { seq: number };
    return ack.seq !== original.seq;
  }, 5_000, 'the replay stored under a new sequence');
  await joy.say('after the replay');
  // lu reloads: the history holds the replay; it was seen under another sequence, so it stays hidden.
  const again = await (await Person.open(t, home, m.url, 'lux', problems)).enter('login');
  await again.open('u:joy');
  await again.page.waitForSelector('#messages li.theirs .text:text-is("after the replay")');
  t.deepEqual(await again.texts('#messages li.theirs .text'), ['after the replay']);
  t.deepEqual(problems, []);
});
