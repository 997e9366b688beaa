import { useState } from 'preact/hooks';
import type { Message } from '../api/index.js';
import { vote } from '../state/actions.js';
import { api, fail } from '../state/session.js';
import { changed, state } from '../state/store.js';
import { t } from './common.js';

/** A poll in a message: choose and vote; counts shown per option. */
export function PollView({ message }: { message: Message }) {
  const poll = message.poll!;
  const [chosen, setChosen] = useState<string[]>(poll.myVotes);
  const total = poll.options.reduce((n, o) => n + o.votes, 0);
  const toggle = (id: string) => setChosen(poll.multiple ? (chosen.includes(id) ? chosen.filter((x) => x !== id) : [...chosen, id]) : [id]);
  return (
    <form
      class="poll"
      onSubmit={(ev) => {
        ev.preventDefault();
        void vote(message, chosen);
      }}
    >
      <fieldset disabled={poll.closed}>
        <legend>
          {t('poll')}: {poll.question} {poll.closed && `(${t('closed')})`}
        </legend>
        {poll.options.map((o) => (
          <label key={o.id} class="poll-option">
            <input type={poll.multiple ? 'checkbox' : 'radio'} name={`poll-${poll.id}`} checked={chosen.includes(o.id)} onChange={() => toggle(o.id)} />
            <span>{o.text}</span>
            <meter min={0} max={Math.max(total, 1)} value={o.votes} aria-hidden="true" />
            <span class="votes">{t('votes', { count: o.votes })}</span>
          </label>
        ))}
        <button type="submit">{t('vote')}</button>
      </fieldset>
      {message.senderId === state.me?.id && !poll.closed && (
        <button
          type="button"
          onClick={() =>
            void api.closePoll(poll.id).then((closed) => {
              message.poll = closed;
              changed();
            }, fail)
          }
        >
          {t('closePoll')}
        </button>
      )}
    </form>
  );
}

/** The form that posts a new poll. */
export function PollForm({ onSubmit, onCancel }: { onSubmit: (q: string, options: string[], multiple: boolean) => void; onCancel: () => void }) {
  const [options, setOptions] = useState(['', '']);
  return (
    <form
      class="poll-form"
      aria-label={t('newPoll')}
      onSubmit={(ev) => {
        ev.preventDefault();
        const form = new FormData(ev.currentTarget as HTMLFormElement);
        const filled = options.map((o) => o.trim()).filter(Boolean);
        onSubmit(String(form.get('question') ?? '').trim(), filled, form.get('multiple') === 'on');
      }}
    >
      <label>
        {t('question')}
        <input name="question" required maxLength={300} />
      </label>
      {options.map((value, i) => (
        <label key={i}>
          {t('option', { n: i + 1 })}
          <input value={value} required={i < 2} onInput={(e) => setOptions(options.map((o, j) => (j === i ? (e.currentTarget as HTMLInputElement).value : o)))} />
        </label>
      ))}
      <label class="inline">
        <input type="checkbox" name="multiple" /> {t('multipleAnswers')}
      </label>
      <div class="row">
        <button type="button" onClick={() => setOptions([...options, ''])} disabled={options.length >= 10}>
          {t('addOption')}
        </button>
        <button type="button" onClick={onCancel}>
          {t('cancel')}
        </button>
        <button type="submit" class="primary">
          {t('create')}
        </button>
      </div>
    </form>
  );
}
