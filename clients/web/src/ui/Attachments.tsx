import { useEffect, useState } from 'preact/hooks';
import type { Attachment } from '../api/index.js';
import { isImage, thumbnailUrl } from '../state/media.js';
import { api, fail } from '../state/session.js';
import { changed, state } from '../state/store.js';
import { formatSize, saveBlob, t } from './common.js';

async function download(id: string, name: string): Promise<void> {
  try {
    saveBlob(await api.attachment(id), name);
  } catch (error) {
    fail(error);
  }
}

/** A file to download: name and size. */
function FileButton({ a }: { a: Attachment }) {
  return (
    <button type="button" class="attachment" onClick={() => void download(a.id, a.name)} aria-label={t('download', { name: a.name })}>
      📎 {a.name} <span class="size">({formatSize(a.size)})</span>
    </button>
  );
}

/**
 * An image as its server-made preview; a click opens the viewer. Until the preview arrives a box
 * of the preview's largest size keeps the layout from jumping; without a preview (the server could
 * not decode the file) it is offered as a file.
 */
function ImagePreview({ a }: { a: Attachment }) {
  const [url, setUrl] = useState<string | null | undefined>(undefined);
  useEffect(() => {
    let live = true;
    void thumbnailUrl(a.id).then((u) => live && setUrl(u));
    return () => void (live = false);
  }, [a.id]);
  if (url === null) return <FileButton a={a} />;
  return (
    <button
      type="button"
      class="thumb"
      aria-label={t('openImage', { name: a.name })}
      onClick={() => {
        state.viewer = { id: a.id, name: a.name };
        changed();
      }}
    >
      {url ? <img src={url} alt={a.name} /> : <span class="thumb-placeholder" />}
    </button>
  );
}

/** A message's files: images as previews (side by side), the rest as download buttons. */
export function Attachments({ items }: { items: Attachment[] }) {
  const images = items.filter(isImage);
  const files = items.filter((a) => !isImage(a));
  return (
    <>
      {images.length > 0 && (
        <div class="thumbs">
          {images.map((a) => (
            <ImagePreview key={a.id} a={a} />
          ))}
        </div>
      )}
      {files.map((a) => (
        <FileButton key={a.id} a={a} />
      ))}
    </>
  );
}
