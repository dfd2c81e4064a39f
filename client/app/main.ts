/**
 * The browser client's entry point: connects to the receiver that served it, shows the
 * login form, then the messenger (shell.ts). The connection state is always on screen in
 * #status. The page runs under the receivers' CSP (no inline script or style).
 */
import { Chat } from './chat.ts';
import { Connection, sameOriginSocket } from './connection.ts';
import { describeError, errorCode } from './errors.ts';
import { el, Shell } from './shell.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $('status');

/**
 * A question on the page (not window.confirm: it must not freeze the page, and tests read
 * it like a person would): `text`, then the buttons; resolves with the one pressed.
 */
function ask<A extends string>(host: HTMLElement, id: string, text: string, answers: Record<A, string>, field?: HTMLInputElement): Promise<A> {
  return new Promise((resolve) => {
    const box = el('div', { id, className: 'question', role: 'alertdialog' }, el('p', { textContent: text }));
    if (field) box.append(field);
    for (const [answer, label] of Object.entries(answers) as [A, string][]) {
      const b = el('button', { type: 'button', textContent: label });
      b.dataset.answer = answer;
      b.addEventListener('click', () => {
        box.remove();
        resolve(answer);
      });
      box.append(b);
    }
    host.append(box);
    (field ?? box.querySelector('button'))?.focus();
  });
}

function loginView(chat: Chat, done: () => void): HTMLElement {
  const user = el('input', { id: 'user', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: false });
  const password = el('input', { id: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const recovery = el('input', { id: 'use-recovery-key', type: 'checkbox' });
  const problem = el('p', { id: 'login-problem', className: 'problem', role: 'alert' });
  const register = el('button', { id: 'register', type: 'button', textContent: 'Register' });
  const login = el('button', { id: 'login', type: 'submit', textContent: 'Log in' });
  const form = el(
    'form',
    { id: 'login-form' },
    el('label', {}, 'User ', user),
    el('label', {}, 'Password ', password),
    login,
    register,
    el('label', { className: 'option' }, recovery, ' Register with a recovery key: the key backup then opens only with a key shown once, never with the password alone'),
    problem,
  );
  // The password of an account made before OPAQUE goes to the server once, only if the person says so.
  chat.confirmLegacy = async () =>
    (await ask(form, 'legacy-confirm', 'This account was made before passwords stopped reaching the server. To upgrade it, your password must be sent to the server one last time; after that it never is. Upgrade now?', { yes: 'Send it once and upgrade', no: 'Cancel' })) === 'yes';
  chat.askRecoveryKey = async () => {
    const field = el('input', { id: 'recovery-key', autocomplete: 'off', spellcheck: false, placeholder: 'xxxx-xxxx-…' });
    return (await ask(form, 'recovery-ask', 'Your key backup is sealed with a recovery key. Enter it to read your messages in this browser.', { ok: 'Open', cancel: 'Cancel' }, field)) === 'ok' ? field.value : null;
  };
  const act = (how: 'register' | 'login') => async () => {
    problem.textContent = '';
    delete problem.dataset.code;
    try {
      status.textContent = how === 'register' ? 'making your keys…' : 'opening your keys…';
      if (how === 'register') await chat.register(user.value.trim(), password.value, { recoveryKey: recovery.checked });
      else await chat.login(user.value.trim(), password.value);
      password.value = '';
      // A recovery key is shown once, and the messenger opens when the person says it is kept.
      if (chat.recoveryKeyText) {
        await ask(form, 'recovery-shown', `Your recovery key — write it down now; it is shown only this once, and without it a new browser cannot read your messages: ${chat.recoveryKeyText}`, { kept: 'I have written it down' });
        chat.recoveryKeyText = null;
      }
      done();
    } catch (e) {
      problem.textContent = describeError(e);
      problem.dataset.code = errorCode(e);
      status.textContent = 'connected';
    }
  };
  register.addEventListener('click', () => void act('register')());
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void act('login')();
  });
  return form;
}

async function main(): Promise<void> {
  const conn = new Connection(sameOriginSocket(window.location));
  const chat = new Chat(conn);
  const app = $('app');
  const show = () => {
    const who = chat.user ? `${chat.user} · ` : '';
    status.dataset.cell = conn.cell;
    status.dataset.failovers = conn.failovers.join(',');
    return who;
  };
  // The connection state is always on screen.
  conn.onState = (state, detail) => {
    status.dataset.state = state;
    const who = show();
    status.textContent = state === 'connected' ? `${who}connected to ${detail}` : state === 'reconnecting' ? `${who}reconnecting: ${detail}…` : `${who}${state}: ${detail}`;
    if (state === 'connected') chat.resumed();
  };
  // How many receivers this page could fail over to: what the pushes and polls told it.
  conn.onReceivers = (count) => (status.dataset.receivers = String(count));
  conn.onSessionEnded = (reason) => {
    app.replaceChildren(el('p', { id: 'ended', className: 'problem', role: 'alert', textContent: `Logged out: ${reason}. Reload the page to log in again.` }));
  };
  await conn.opened;
  const welcome = await conn.hello();
  status.textContent = `connected to ${welcome.cell} (${welcome.receivers.length} receiver${welcome.receivers.length === 1 ? '' : 's'} live)`;
  app.replaceChildren(loginView(chat, () => {
    status.textContent = `${show()}connected to ${conn.cell}`;
    status.dataset.user = chat.user ?? '';
    status.dataset.keys = chat.keysFrom ?? '';
    const shell = new Shell(chat);
    app.replaceChildren(shell.root);
    if (chat.upgraded) {
      const told = el('p', { id: 'upgraded', className: 'notice', role: 'status', textContent: 'Your account was upgraded: from now on your password never leaves this browser.' });
      app.prepend(told);
    }
    $('find').focus();
  }));
}

main().catch((e: unknown) => {
  status.textContent = `not connected: ${(e as Error).message}`;
  status.dataset.state = 'error';
});
