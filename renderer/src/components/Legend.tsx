// The key to the timeline's encoding: every state has a pattern, a glyph and words (P15).

const ITEMS: { cls: string; glyph: string; words: string }[] = [
  { cls: 'span-recording', glyph: '●', words: 'recording' },
  { cls: 'span-disabled', glyph: '‖', words: 'not recording (frozen interval)' },
  { cls: 'span-busy', glyph: '⟳', words: 'busy (in use by a job)' },
  { cls: 'span-inconsistent', glyph: '⚠', words: 'inconsistent (unusable)' },
];

export function Legend() {
  return (
    <div className="legend" aria-label="Legend">
      {ITEMS.map((i) => (
        <span key={i.cls} className="lg">
          <svg width={26} height={11} aria-hidden="true" className={`span ${i.cls}`}>
            <rect x={0.5} y={0.5} width={25} height={10} rx={1.5} />
          </svg>
          {i.glyph} {i.words}
        </span>
      ))}
      <span className="lg">∅ bitmap missing</span>
      <span className="lg">■ full · ◧ incremental · ◇ differential · ✕ failed backup</span>
      <span className="lg">○ NOW (changes since the current checkpoint)</span>
      <span className="lg" title="Under each disk: where it changed since the selected checkpoint, along the disk's offsets; one cell is one region of the disk">
        disk map:
        <span className="hm-key" aria-hidden="true"><span className="clean" /><span className="partial" /><span className="full" /></span>
        ▁ clean · ▄ partly dirty (taller = more of the cell dirty) · █ fully dirty
      </span>
    </div>
  );
}
