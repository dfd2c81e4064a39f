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

function loginView(chat: Chat, done: () => void): HTMLElement {
  const user = el('input', { id: 'user', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: false });
  const password = el('input', { id: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const problem = el('p', { id: 'login-problem', className: 'problem', role: 'alert' });
  const act = (how: 'register' | 'login') => async () => {
    problem.textContent = '';
    try {
      status.textContent = how === 'register' ? 'making your keys…' : 'opening your keys…';
      await chat[how](user.value.trim(), password.value);
      done();
    } catch (e) {
      problem.textContent = describeError(e);
      problem.dataset.code = errorCode(e);
      status.textContent = 'connected';
    }
  };
  const register = el('button', { id: 'register', type: 'button', textContent: 'Register' });
  const login = el('button', { id: 'login', type: 'submit', textContent: 'Log in' });
  register.addEventListener('click', () => void act('register')());
  const form = el('form', { id: 'login-form' }, el('label', {}, 'User ', user), el('label', {}, 'Password ', password), login, register, problem);
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
    $('find').focus();
  }));
}

main().catch((e: unknown) => {
  status.textContent = `not connected: ${(e as Error).message}`;
  status.dataset.state = 'error';
});
