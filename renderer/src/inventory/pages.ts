// The views of the main column, and where the keyboard lands when one opens: the table's current
// row (one tab stop), else its first control.

export type Page = 'timeline' | 'backups' | 'fleet';

/** Focuses the table of the backups view or the fleet overview once it is drawn. */
export function focusInventory(page: Exclude<Page, 'timeline'>): void {
  const table = page === 'backups' ? '.backups-table' : '.fleet-table';
  let tries = 0;
  const attempt = () => {
    const row = document.querySelector<HTMLElement>(`${table} tbody tr[tabindex="0"]`);
    if (row) return row.focus();
    // The rows arrive with the repository's answer: wait for them a little, then take the first control.
    if (++tries < 30) return void setTimeout(attempt, 50);
    document.querySelector<HTMLElement>(page === 'backups' ? '#backups-filter' : '#fleet-limit')?.focus();
  };
  setTimeout(attempt, 0);
}
