// The repository's size and its file system's space, as words and a bar (the repository's share
// of the file system, the rest used by other files, and what is still free).

import type { RepositoryUsage } from '../../../shared/contract';
import { formatBytes, middleEllipsis } from '../format';

export function RepositoryUsageBar({ repo, usage, exists }: { repo: string; usage?: RepositoryUsage; exists: boolean }) {
  if (!exists || !usage) return <div className="repo-usage muted" title={repo}>Repository {middleEllipsis(repo, 48)} (not created yet)</div>;
  const total = usage.fsSize || 1;
  const mine = Math.min(100, (usage.allocated / total) * 100);
  const others = Math.max(0, Math.min(100 - mine, ((usage.fsSize - usage.fsFree - usage.allocated) / total) * 100));
  const low = usage.fsAvailable / total < 0.1;
  return (
    <div className="repo-usage" title={`${repo}\n${usage.files} files, ${usage.bytes} bytes (${usage.allocated} on disk)\nfile system: ${usage.fsSize} bytes, ${usage.fsAvailable} available`}>
      <span className="mono repo-path">{middleEllipsis(repo, 48)}</span>
      <span>
        <strong>{formatBytes(usage.bytes)}</strong> in {usage.files} files
        {usage.allocated !== usage.bytes && <span className="muted"> ({formatBytes(usage.allocated)} on disk)</span>}
      </span>
      <span className={low ? 'error-text' : undefined}><strong>{formatBytes(usage.fsAvailable)}</strong> free of {formatBytes(usage.fsSize)}{low ? ' — under 10 % left' : ''}</span>
      {/* An SVG, not inline styles: the renderer's CSP allows no style attributes. */}
      <svg className="usage-bar" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" aria-label={`Repository ${mine.toFixed(1)} % of the file system, other files ${others.toFixed(1)} %, ${formatBytes(usage.fsAvailable)} free`}>
        <rect className="usage-free" x="0" y="0" width="100" height="8" />
        <rect className="usage-others" x={mine} y="0" width={others} height="8" />
        <rect className="usage-mine" x="0" y="0" width={Math.max(mine, usage.allocated > 0 ? 0.6 : 0)} height="8" />
      </svg>
    </div>
  );
}
