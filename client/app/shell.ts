/**
 * The messenger's screen once logged in: conversations on the left (or alone on a phone),
 * the open conversation on the right. Everything is built with textContent (no HTML from
 * messages or names) and re-rendered from the Chat model on change, one frame at a time.
 *
 * Keyboard: Enter sends; Escape goes back to the list; Alt+↑/↓ moves between
 * conversations; "/" jumps to the people search; every control is a real button or field.
 */
import type { Chat, ChatMessage, Conversation } from './chat.ts';
import { describeError, errorCode } from './errors.ts';

/** Messages rendered at first; scrolling to the top (or "Earlier messages") shows this many more. */
const WINDOW = 100;

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

const time = (at: number) => new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

export class Shell {
  readonly #chat: Chat;
  readonly root: HTMLElement;
  #active: string | null = null;
  #shown = WINDOW;
  #frame = 0;
  readonly #list = el('ul', { id: 'conversations' });
  readonly #found = el('ul', { id: 'found' });
  readonly #title = el('h2', { id: 'conv-title' });
  readonly #presence = el('span', { id: 'conv-presence' });
  readonly #messages = el('ol', { id: 'messages', tabIndex: 0 });
  readonly #earlier = el('button', { id: 'earlier', type: 'button', textContent: 'Earlier messages', hidden: true });
  readonly #warning = el('div', { id: 'key-warning', role: 'alert', hidden: true });
  readonly #safety = el('div', { id: 'safety-panel', hidden: true });
  readonly #text = el('input', { id: 'text', placeholder: 'Message', autocomplete: 'off', required: true, maxLength: 16_000 });
  readonly #problem = el('p', { id: 'problem', className: 'problem', role: 'alert' });
  readonly #conversation: HTMLElement;
  readonly #sendForm: HTMLFormElement;

  constructor(chat: Chat) {
    this.#chat = chat;
    chat.onChange = () => this.render();
    chat.onProblem = (text, code) => this.problem(text, code);

    // People search: type a name, Enter opens the chat with the first match.
    const find = el('input', { id: 'find', placeholder: 'Find people (/)', autocomplete: 'off', type: 'search' });
    const findForm = el('form', { id: 'find-form', role: 'search' }, find);
    let query = 0;
    find.addEventListener('input', () => {
      const q = find.value.trim().toLowerCase();
      const mine = ++query;
      if (q.length === 0) return this.#found.replaceChildren();
      chat.findUsers(q).then((users) => {
        if (mine !== query) return;
        this.#found.replaceChildren(...users.map((u) => {
          const b = el('button', { type: 'button', className: 'found', textContent: u.user });
          b.dataset.user = u.user;
          b.addEventListener('click', () => void this.#openDirect(u.user, find));
          return el('li', {}, b);
        }));
      }, (e: unknown) => this.problem(describeError(e), errorCode(e)));
    });
    findForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const q = find.value.trim().toLowerCase();
      if (q.length > 0) void this.#openDirect(q, find);
    });

    // New group: a name and the other members.
    const groupName = el('input', { id: 'group-name', placeholder: 'Group name', required: true, maxLength: 64 });
    const groupMembers = el('input', { id: 'group-members', placeholder: 'Members, comma separated', required: true });
    const groupForm = el('form', { id: 'group-form', hidden: true }, groupName, groupMembers, el('button', { type: 'submit', textContent: 'Create' }));
    const newGroup = el('button', { id: 'new-group', type: 'button', textContent: 'New group' });
    newGroup.addEventListener('click', () => {
      groupForm.hidden = !groupForm.hidden;
      if (!groupForm.hidden) groupName.focus();
    });
    groupForm.addEventListener('submit', (e) => {
      e.preventDefault();
      chat.createGroup(groupName.value, groupMembers.value.split(',')).then((c) => {
        groupForm.hidden = true;
        groupName.value = groupMembers.value = '';
        this.open(c.id);
      }, (err: unknown) => this.problem(describeError(err), errorCode(err)));
    });

    const sidebar = el('aside', { id: 'sidebar' }, findForm, this.#found, newGroup, groupForm, el('h2', { className: 'sr-only', textContent: 'Conversations' }), this.#list);

    const back = el('button', { id: 'back', type: 'button', textContent: '←', title: 'Back to conversations (Esc)' });
    back.setAttribute('aria-label', 'Back to conversations');
    back.addEventListener('click', () => this.back());
    const safetyToggle = el('button', { id: 'safety-toggle', type: 'button', textContent: 'Safety number' });
    safetyToggle.addEventListener('click', () => {
      this.#safety.hidden = !this.#safety.hidden;
      this.render();
    });
    this.#earlier.addEventListener('click', () => this.#showEarlier());
    this.#messages.addEventListener('scroll', () => {
      if (this.#messages.scrollTop === 0 && !this.#earlier.hidden) this.#showEarlier();
    });
    this.#sendForm = el('form', { id: 'send-form' }, this.#text, el('button', { type: 'submit', textContent: 'Send' }));
    this.#sendForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const text = this.#text.value;
      if (!this.#active || text.trim().length === 0) return;
      this.#problem.textContent = '';
      // Cleared at once, so the next message can be typed while this one is sealed.
      this.#text.value = '';
      this.#stick = true;
      chat.send(this.#active, text).catch((err: unknown) => {
        if (this.#text.value === '') this.#text.value = text;
        this.problem(describeError(err), errorCode(err));
      });
    });
    this.#conversation = el('section', { id: 'conversation' },
      el('header', { className: 'conv-head' }, back, this.#title, this.#presence, safetyToggle),
      this.#warning, this.#safety, this.#earlier, this.#messages, this.#sendForm);

    this.root = el('div', { id: 'shell' }, sidebar, this.#conversation, this.#problem);
    this.root.dataset.view = 'list';
    // On the document: shortcuts work wherever the focus is (or is not).
    const keys = (e: KeyboardEvent) => (this.root.isConnected ? this.#keys(e, find) : document.removeEventListener('keydown', keys));
    document.addEventListener('keydown', keys);
    document.addEventListener('visibilitychange', () => this.render());
    this.render();
  }

  /** Whether the message list should follow new messages (it was at the bottom). */
  #stick = true;

  problem(text: string, code = ''): void {
    this.#problem.textContent = text;
    this.#problem.dataset.code = code;
  }

  async #openDirect(user: string, find: HTMLInputElement): Promise<void> {
    try {
      const c = await this.#chat.openDirect(user);
      find.value = '';
      this.#found.replaceChildren();
      this.open(c.id);
    } catch (e) {
      this.problem(describeError(e), errorCode(e));
    }
  }

  open(id: string): void {
    this.#active = id;
    this.#shown = WINDOW;
    this.#stick = true;
    this.#safety.hidden = true;
    this.root.dataset.view = 'conv';
    this.#problem.textContent = '';
    // Painted now, not next frame: the field must be visible to take the focus.
    this.#paint();
    this.#text.focus();
  }

  back(): void {
    const was = this.#active;
    this.#active = null;
    this.#chat.visible = null;
    this.root.dataset.view = 'list';
    this.#paint();
    if (was) this.#list.querySelector<HTMLButtonElement>(`button[data-conv="${CSS.escape(was)}"]`)?.focus();
  }

  #keys(e: KeyboardEvent, find: HTMLInputElement): void {
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
    if (e.key === 'Escape' && this.#active) {
      e.preventDefault();
      this.back();
    } else if (e.key === '/' && !typing) {
      e.preventDefault();
      find.focus();
    } else if (e.altKey && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
      e.preventDefault();
      const ids = this.#chat.conversations().map((c) => c.id);
      if (ids.length === 0) return;
      const at = this.#active ? ids.indexOf(this.#active) : -1;
      const next = e.key === 'ArrowDown' ? Math.min(ids.length - 1, at + 1) : Math.max(0, at - 1);
      this.open(ids[next]!);
    }
  }

  #showEarlier(): void {
    const before = this.#messages.scrollHeight;
    this.#shown += WINDOW;
    this.#stick = false;
    this.#paint();
    // Keep what was on screen where it was.
    this.#messages.scrollTop = this.#messages.scrollHeight - before;
  }

  render(): void {
    if (this.#frame !== 0) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      this.#paint();
    });
  }

  #paint(): void {
    const chat = this.#chat;
    const conv = this.#active ? chat.conversation(this.#active) : undefined;
    const looking = conv !== undefined && document.visibilityState === 'visible';
    chat.visible = looking ? conv.id : null;
    if (looking && conv.unread > 0) chat.markRead(conv.id);
    this.#paintList();
    this.#conversation.hidden = !conv;
    if (!conv) return;
    this.#title.textContent = conv.kind === 'group' ? `${conv.title} (${conv.members.length})` : conv.title;
    const other = conv.kind === 'direct' ? conv.members.find((m) => m !== chat.user) : undefined;
    const online = other ? chat.online(other) : undefined;
    this.#presence.textContent = other ? (online === undefined ? '' : online ? 'online' : 'offline') : conv.members.join(', ');
    this.#presence.dataset.online = String(online ?? '');
    this.#paintTrust(conv);
    this.#paintMessages(conv);
  }

  #paintList(): void {
    const chat = this.#chat;
    // Re-rendering must not take the focus from the person tabbing through the list.
    const focused = (document.activeElement as HTMLElement | null)?.closest?.('#conversations button')?.getAttribute('data-conv');
    this.#list.replaceChildren(...chat.conversations().map((c) => {
      const other = c.kind === 'direct' ? c.members.find((m) => m !== chat.user) : undefined;
      const online = other ? chat.online(other) : undefined;
      const dot = el('span', { className: 'presence', title: online ? 'online' : online === false ? 'offline' : '' });
      dot.dataset.online = String(online ?? '');
      const last = c.messages.at(-1);
      const unread = el('span', { className: 'unread', textContent: c.unread > 0 ? String(c.unread) : '' });
      unread.setAttribute('aria-label', `${c.unread} unread`);
      const b = el('button', { type: 'button', className: 'conv' }, dot, el('span', { className: 'title', textContent: c.kind === 'group' ? `# ${c.title}` : c.title }), unread,
        el('span', { className: 'last', textContent: last ? (last.deleted ? 'message deleted' : `${last.mine ? 'you: ' : ''}${last.text}`).slice(0, 60) : '' }));
      b.dataset.conv = c.id;
      b.dataset.unread = String(c.unread);
      if (c.id === this.#active) b.setAttribute('aria-current', 'true');
      if (chat.blockers(c).length > 0) b.classList.add('warn');
      b.addEventListener('click', () => this.open(c.id));
      return el('li', {}, b);
    }));
    if (focused) this.#list.querySelector<HTMLButtonElement>(`button[data-conv="${CSS.escape(focused)}"]`)?.focus();
  }

  #paintTrust(conv: Conversation): void {
    const chat = this.#chat;
    const blockers = chat.blockers(conv);
    this.#warning.hidden = blockers.length === 0;
    this.#warning.replaceChildren(...blockers.map((b) => {
      const accept = el('button', { type: 'button', className: 'accept-key', textContent: `Accept ${b.user}'s new key` });
      accept.dataset.user = b.user;
      accept.addEventListener('click', () => chat.acceptKey(b.user));
      return el('p', {},
        `${b.user}'s security key has changed. This happens when they reinstall or someone is intercepting. `,
        `Compare the new safety number with them before you go on. ${b.held > 0 ? `${b.held} message${b.held === 1 ? '' : 's'} signed with the new key wait${b.held === 1 ? 's' : ''}. ` : ''}`,
        accept);
    }));
    for (const c of this.#sendForm.elements) (c as HTMLInputElement).disabled = blockers.length > 0;
    if (this.#safety.hidden) return;
    const rows = conv.members.filter((m) => m !== chat.user).map((m) => {
      const s = chat.safetyNumber(m);
      const number = el('code', { className: 'safety-number', textContent: s?.number ?? 'no key yet' });
      number.dataset.user = m;
      const verified = chat.verified(m);
      const mark = el('button', { type: 'button', className: 'mark-verified', textContent: verified ? 'Verified ✓ (undo)' : 'Mark as verified', disabled: !s || s.pending });
      mark.dataset.user = m;
      mark.dataset.verified = String(verified);
      mark.addEventListener('click', () => chat.markVerified(m, !verified));
      return el('p', {}, `With ${m}${s?.pending ? ' (new key)' : ''}: `, number, ' ', mark);
    });
    this.#safety.replaceChildren(el('p', { textContent: 'Compare these numbers with each person, in person or on a call. If they match, nobody is in between.' }), ...rows);
  }

  #paintMessages(conv: Conversation): void {
    const box = this.#messages;
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    const from = Math.max(0, conv.messages.length - this.#shown);
    this.#earlier.hidden = from === 0;
    const active = document.activeElement as HTMLElement | null;
    const focused = active?.closest?.('#messages li') ? { msg: active.closest('li')!.dataset.msg, cls: active.className } : null;
    box.replaceChildren(...conv.messages.slice(from).map((m) => this.#message(conv, m)));
    if (focused?.msg) box.querySelector<HTMLElement>(`li[data-msg="${CSS.escape(focused.msg)}"] button.${CSS.escape(focused.cls)}`)?.focus();
    if (this.#stick || atBottom) box.scrollTop = box.scrollHeight;
    this.#stick = false;
  }

  #message(conv: Conversation, m: ChatMessage): HTMLLIElement {
    const chat = this.#chat;
    const li = el('li', { className: `${m.mine ? 'mine' : 'theirs'}${m.deleted ? ' deleted' : ''}` });
    li.dataset.msg = m.msg;
    li.dataset.from = m.from;
    if (conv.kind === 'group' && !m.mine) li.append(el('b', { className: 'from', textContent: m.from }));
    li.append(el('span', { className: 'text', textContent: m.deleted ? 'This message was deleted.' : m.text }));
    const state = m.mine ? this.#state(conv, m) : '';
    const meta = el('span', { className: 'meta', textContent: `${time(m.at)}${state ? ` · ${state}` : ''}` });
    meta.dataset.state = m.mine ? (m.status === 'sent' && m.readBy.size > 0 ? 'read' : m.status) : 'received';
    li.append(meta);
    if (m.problem) li.append(el('span', { className: 'problem', textContent: m.problem }));
    if (!m.deleted) {
      const forMe = el('button', { type: 'button', className: 'delete-me', textContent: 'Delete for me' });
      forMe.addEventListener('click', () => chat.deleteForMe(conv.id, m.msg, m.from).catch((e: unknown) => this.problem(describeError(e), errorCode(e))));
      li.append(forMe);
      if (chat.canDeleteForEveryone(m)) {
        const all = el('button', { type: 'button', className: 'delete-all', textContent: 'Delete for everyone' });
        all.addEventListener('click', () => chat.deleteForEveryone(conv.id, m.msg).catch((e: unknown) => this.problem(describeError(e), errorCode(e))));
        li.append(all);
      }
    }
    return li;
  }

  #state(conv: Conversation, m: ChatMessage): string {
    if (m.status !== 'sent') return m.status === 'sending' ? 'sending…' : 'not sent';
    const others = conv.members.length - 1;
    if (m.readBy.size === 0) return 'sent';
    return conv.kind === 'direct' ? 'read' : `read by ${m.readBy.size}/${others}`;
  }
}
