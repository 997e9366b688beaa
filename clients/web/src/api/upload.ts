import { ApiError, type Attachment } from './types.js';

/**
 * POST /attachments as multipart, through XMLHttpRequest because fetch reports no upload
 * progress. `progress` gets a fraction from 0 to 1. A 401 is refreshed once by the caller's `retry`.
 */
export function uploadAttachment(
  url: string,
  token: string | null,
  file: File,
  progress: (fraction: number) => void,
): Promise<Attachment> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    if (token) xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable) progress(ev.loaded / ev.total);
    };
    xhr.onload = () => {
      let json: { error?: { code: string; message: string } } | undefined;
      try {
        json = JSON.parse(xhr.responseText);
      } catch {
        json = undefined;
      }
      if (xhr.status === 201 || xhr.status === 200) resolve(json as unknown as Attachment);
      else reject(new ApiError(xhr.status, json?.error?.code ?? 'http_error', json?.error?.message ?? `HTTP ${xhr.status}`));
    };
    xhr.onerror = () => reject(new ApiError(0, 'network', 'Network error'));
    const form = new FormData();
    form.append('file', file, file.name);
    xhr.send(form);
  });
}
