import { useEffect, useRef, useState } from 'preact/hooks';
import { originalUrl } from '../state/media.js';
import { api, fail } from '../state/session.js';
import { changed, state } from '../state/store.js';
import { saveBlob, t } from './common.js';

/**
 * The image viewer: the whole image in a modal <dialog> (the browser keeps focus inside it and
 * closes it on Escape), with its name, a download button and a close button.
 */
export function Viewer() {
  const open = state.viewer;
  const dialog = useRef<HTMLDialogElement>(null);
  const [url, setUrl] = useState<string | null>(null);

  useEffect(() => {
    setUrl(null);
    if (!open) {
      if (dialog.current?.open) dialog.current.close();
      return;
    }
    if (!dialog.current?.open) dialog.current?.showModal();
    let live = true;
    originalUrl(open.id).then(
      (u) => live && setUrl(u),
      (error: unknown) => {
        close();
        fail(error);
      },
    );
    return () => void (live = false);
  }, [open?.id]);

  const close = () => {
    state.viewer = null;
    changed();
  };

  return (
    <dialog ref={dialog} class="viewer" aria-label={open?.name ?? ''} onClose={close} onClick={(e) => e.target === dialog.current && close()}>
      {open && (
        <>
          <div class="viewer-bar">
            <span class="viewer-name">{open.name}</span>
            <button type="button" onClick={() => void api.attachment(open.id).then((b) => saveBlob(b, open.name), fail)}>
              {t('downloadShort')}
            </button>
            <button type="button" onClick={close}>
              ×<span class="visually-hidden">{t('close')}</span>
            </button>
          </div>
          {url ? <img src={url} alt={open.name} /> : <p class="hint">{t('loading')}</p>}
        </>
      )}
    </dialog>
  );
}
