// A page of a listing filtered to what the caller may see. Filtered before paging: a page comes
// back short only at the end of the listing, and its token is the name of the page's last visible
// item, never a name the caller may not see.
import type { Page } from "./model.ts";

const LARGEST_READ = 1000;

export async function visiblePage<T>(
  pageSize: number,
  after: string,
  visible: (name: string) => boolean,
  read: (limit: number, after: string) => Promise<Page<T>>,
  nameOf: (item: T) => string,
): Promise<Page<T>> {
  const items: T[] = [];
  let cursor = after;
  // One read more than the page is enough when everything is visible; reads grow while the
  // caller sees little of what they return.
  let limit = pageSize + 1;
  for (;;) {
    const chunk = await read(limit, cursor);
    for (const item of chunk.items) {
      if (!visible(nameOf(item))) continue;
      if (items.length === pageSize) return { items, nextPageToken: nameOf(items.at(-1) as T) };
      items.push(item);
    }
    if (!chunk.nextPageToken) return { items, nextPageToken: "" };
    cursor = chunk.nextPageToken;
    limit = Math.min(limit * 4, LARGEST_READ);
  }
}
