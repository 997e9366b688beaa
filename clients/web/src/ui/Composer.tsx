import { useEffect, useRef, useState } from 'preact/hooks';
import type { Attachment, Message } from '../api/index.js';
import { createPoll, editMessage, upload } from '../state/actions.js';
import { api, fail, sendMessage, sendTyping } from '../state/session.js';
import { state } from '../state/store.js';
import { nameOf, t } from './common.js';
import { PollForm } from './Poll.js';

interface Props {
  chatId: string;
  replyTo: Message | null;
  editing: Message | null;
  onDone: () => void;
  /** Gives the chat view a way to hand over files dropped on it. */
  takeFiles?: (accept: (files: File[]) => void) => void;
}

/** The contract takes up to 10 attachments per message. */
const MAX_FILES = 10;

/** The server's default MESSAGE_MAX_CHARS: longer text is refused, so the box stops there. */
const MAX_CHARS = 4096;
/** The counter shows from here on. */
const COUNT_FROM = MAX_CHARS - 500;
/** Per account and chat: another account signed in on this browser never sees it (a session can end without a sign-out). */
const draftKey = (chatId: string) => `parley.draft.${state.me?.id ?? ''}.${chatId}`;

/**
 * Writes, edits and replies; attaches files (with upload progress); starts polls. What is typed
 * and not sent is kept per chat in localStorage (issue 22: a draft was lost on reload); one
 * instance per chat (ChatView keys it by chat id).
 */
export function Composer({ chatId, replyTo, editing, onDone, takeFiles }: Props) {
  const [text, setTextState] = useState(() => localStorage.getItem(draftKey(chatId)) ?? '');
  const setText = (value: string) => {
    setTextState(value);
    // Edits are not drafts of a new message.
    if (editing) return;
    if (value) localStorage.setItem(draftKey(chatId), value);
    else localStorage.removeItem(draftKey(chatId));
  };
  const [attachments, setAttachments] = useState<Attachment[]>([]);
  const [progress, setProgress] = useState<{ name: string; percent: number } | null>(null);
  const [polling, setPolling] = useState(false);
  const [editingId, setEditingId] = useState<string | null>(null);
  const lastTyping = useRef(0);
  const fileInput = useRef<HTMLInputElement>(null);

  // Entering edit mode fills the box with the message's text once.
  if (editing && editing.id !== editingId) {
    setEditingId(editing.id);
    setTextState(editing.body);
  }

  const submit = (ev?: Event) => {
    ev?.preventDefault();
    // Enter while a file uploads (the button is disabled): the text went alone, and the file
    // turned up later in an empty box, easily lost.
    if (progress !== null) return;
    const body = text.trim();
    if (editing) {
      if (body) void editMessage(editing, body);
    } else {
      if (!body && attachments.length === 0) return;
      sendMessage(chatId, body, replyTo?.id, attachments.map((a) => a.id));
      // The message ends the others' "typing" for me; the next keystroke starts a new one at once.
      lastTyping.current = 0;
    }
    // After an edit the box gets back the draft it held before.
    if (editing) setTextState(localStorage.getItem(draftKey(chatId)) ?? '');
    else setText('');
    setAttachments([]);
    setEditingId(null);
    onDone();
  };

  const attached = useRef(0);
  attached.current = attachments.length;
  /**
   * Uploads files one after another (each with its progress), from the file picker, a drop on the
   * chat or a paste; past the contract's ten per message the rest are refused with a word.
   */
  const onFiles = async (files: File[]) => {
    if (files.length === 0) return;
    const room = MAX_FILES - attached.current;
    if (files.length > room) fail(new Error(t('tooManyFiles', { max: MAX_FILES })));
    for (const file of files.slice(0, Math.max(0, room))) {
      setProgress({ name: file.name, percent: 0 });
      try {
        const attachment = await upload(file, (f) => setProgress({ name: file.name, percent: Math.round(f * 100) }));
        setAttachments((list) => [...list, attachment]);
      } catch (error) {
        fail(error);
        break;
      }
    }
    setProgress(null);
    if (fileInput.current) fileInput.current.value = '';
  };
  useEffect(() => {
    takeFiles?.((files) => void onFiles(files));
  }, [takeFiles]);

  /** Takes an upload back: it goes from the box and from the server (no message carries it yet). */
  const removeAttachment = (a: Attachment) => {
    setAttachments((list) => list.filter((x) => x.id !== a.id));
    void api.deleteAttachment(a.id).catch(() => undefined); // unsent uploads expire by themselves too
  };

  if (polling)
    return (
      <PollForm
        onCancel={() => setPolling(false)}
        onSubmit={(q, options, multiple) => void createPoll(chatId, q, options, multiple).then((ok) => ok && setPolling(false))}
      />
    );

  return (
    <form class="composer" onSubmit={submit}>
      {(replyTo || editing) && (
        <div class="composer-context">
          <span>{editing ? t('editing') : t('replyingTo', { name: nameOf(replyTo!.senderId) })}</span>
          <button
            type="button"
            onClick={() => {
              if (editing) setTextState(localStorage.getItem(draftKey(chatId)) ?? '');
              else setText('');
              setEditingId(null);
              onDone();
            }}
          >
            {t('cancel')}
          </button>
        </div>
      )}
      {attachments.length > 0 && (
        <ul class="pending-attachments">
          {attachments.map((a) => (
            <li key={a.id}>
              📎 {a.name}{' '}
              <button type="button" class="remove" onClick={() => removeAttachment(a)}>
                ×<span class="visually-hidden">{t('removeFile', { name: a.name })}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
      {progress && (
        <label class="progress">
          {t('uploading', progress)}
          <progress max={100} value={progress.percent} />
        </label>
      )}
      <div class="row">
        <label class="visually-hidden" for="composer-text">
          {t('message')}
        </label>
        <textarea
          id="composer-text"
          rows={1}
          maxLength={MAX_CHARS}
          aria-describedby={text.length >= COUNT_FROM ? 'composer-count' : undefined}
          value={text}
          placeholder={t('messagePlaceholder')}
          onInput={(e) => {
            setText((e.currentTarget as HTMLTextAreaElement).value);
            if (Date.now() - lastTyping.current > 2_000) {
              lastTyping.current = Date.now();
              sendTyping(chatId);
            }
          }}
          onPaste={(e) => {
            // A pasted picture (a screenshot) or file is attached; pasted text stays text.
            const files = [...(e.clipboardData?.files ?? [])];
            if (files.length === 0 || editing) return;
            e.preventDefault();
            void onFiles(files);
          }}
          onKeyDown={(e) => {
            // Enter sends, Shift+Enter starts a new line (the common messenger convention).
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) submit(e);
          }}
        />
        {text.length >= COUNT_FROM && (
          <span id="composer-count" class={`count${text.length >= MAX_CHARS ? ' error' : ''}`} aria-live="polite">
            {t('charsLeft', { left: MAX_CHARS - text.length })}
          </span>
        )}
        {!editing && (
          <>
            <input ref={fileInput} id="composer-file" type="file" multiple class="visually-hidden" onChange={(e) => void onFiles([...((e.currentTarget as HTMLInputElement).files ?? [])])} />
            <label for="composer-file" class="button" role="button" tabIndex={0} title={t('attach')} aria-label={t('attach')} onKeyDown={(e) => e.key === 'Enter' && fileInput.current?.click()}>
              {t('attachShort')}
            </label>
            <button type="button" title={t('newPoll')} aria-label={t('newPoll')} onClick={() => setPolling(true)}>
              {t('poll')}
            </button>
          </>
        )}
        <button type="submit" class="primary" disabled={progress !== null}>
          {editing ? t('save') : t('send')}
        </button>
      </div>
    </form>
  );
}
