// A modal dialog: role="dialog" + aria-modal, labelled by its title, focus moved in on open (to the
// element marked data-autofocus, else the first control), Tab kept inside, Escape cancels, and
// focus returned on close to where it was — or, when that element is gone or disabled (the
// checkpoint just deleted, a button that no longer applies), to the timeline's tree, never <body>.

import { useEffect, useId, useRef, type KeyboardEvent, type ReactNode } from 'react';

export interface ModalProps {
  title: string;
  subtitle?: ReactNode;
  children: ReactNode;
  footer: ReactNode;
  onClose(): void;
  wide?: boolean;
  /** Escape does nothing while true (e.g. an operation is running and must be cancelled explicitly). */
  busy?: boolean;
}

const FOCUSABLE = 'button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

export function Modal({ title, subtitle, children, footer, onClose, wide, busy }: ModalProps) {
  const titleId = useId();
  const ref = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const previous = document.activeElement as HTMLElement | null;
    const el = ref.current;
    const target = el?.querySelector<HTMLElement>('[data-autofocus]') ?? el?.querySelector<HTMLElement>(FOCUSABLE);
    target?.focus();
    return () => {
      // After React has committed what closing changed (the tree without a deleted checkpoint).
      setTimeout(() => {
        const active = document.activeElement;
        if (active && active !== document.body && document.contains(active)) return; // someone already moved focus
        const usable = previous && document.contains(previous) && !(previous as HTMLButtonElement).disabled;
        if (usable) previous.focus();
        else (document.querySelector<HTMLElement>('#timeline [role="treeitem"][tabindex="0"]') ?? document.querySelector<HTMLElement>('#timeline') ?? document.querySelector<HTMLElement>('main'))?.focus();
      }, 0);
    };
  }, []);

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    if (e.key === 'Escape') {
      e.stopPropagation();
      if (!busy) onClose();
      return;
    }
    if (e.key !== 'Tab' || !ref.current) return;
    const items = [...ref.current.querySelectorAll<HTMLElement>(FOCUSABLE)];
    if (items.length === 0) return;
    const first = items[0]!;
    const last = items[items.length - 1]!;
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  };

  return (
    <div className="modal-backdrop">
      <div ref={ref} className={`modal${wide ? ' wide' : ''}`} role="dialog" aria-modal="true" aria-labelledby={titleId} onKeyDown={onKeyDown}>
        <div className="modal-head">
          <h1 id={titleId}>{title}</h1>
          {subtitle && <div className="modal-sub">{subtitle}</div>}
        </div>
        <div className="modal-body">{children}</div>
        <div className="modal-foot">{footer}</div>
      </div>
    </div>
  );
}
