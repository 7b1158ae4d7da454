/**
 * A list of a collection page by page (`limit`/`continue`: every page from one consistent snapshot),
 * each page handed on as it arrives, so that no more than one page is held at once.
 */
import type { KubeTransport } from "./transport.js";
import type { KubeList, RawObject } from "./types.js";

export interface PagedListRequest {
  /** Collection path, see resources.ts collectionPath. */
  path: string;
  labelSelector?: string | undefined;
  fieldSelector?: string | undefined;
  accept?: string | undefined;
  pageSize: number;
}

/**
 * Lists every page (until `signal` aborts), calling `onPage` with each page's items. Answers the
 * list's resourceVersion (from its last page; "" when the server sent none) and the page count.
 */
export async function listPaged(
  transport: KubeTransport,
  req: PagedListRequest,
  signal: AbortSignal,
  onPage: (items: RawObject[]) => void,
): Promise<{ resourceVersion: string; pages: number }> {
  let cont: string | undefined;
  let resourceVersion = "";
  let pages = 0;
  do {
    const page = await transport.request<KubeList>({
      path: req.path,
      query: {
        limit: req.pageSize,
        continue: cont,
        labelSelector: req.labelSelector,
        fieldSelector: req.fieldSelector,
      },
      accept: req.accept ?? "application/json",
      signal,
      timeoutMs: 120_000,
    });
    pages++;
    onPage(page?.items ?? []);
    cont = page?.metadata?.continue || undefined;
    resourceVersion = page?.metadata?.resourceVersion ?? "";
  } while (cont !== undefined && !signal.aborted);
  return { resourceVersion, pages };
}
