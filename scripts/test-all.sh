#!/usr/bin/env bash
# Runs every check and test runner, then prints one line summed over all of them:
#   N passed, N failed, N skipped
# Static checks (typecheck, lint, packaging) count as one test each.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-results
passed=0; failed=0; skipped=0

step() { # step NAME COMMAND...: a check that counts as one test
  local name=$1; shift
  echo "==> $name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $name"; fi
}

step "build (tsc -b, renderer and Electron bundles)" npm run --silent build
step "typecheck (tests, e2e, bench, electron shell)" npx tsc -p tsconfig.check.json --noEmit
step "lint (incl. layering rule)" npx eslint .

echo "==> unit and real-QEMU integration tests (vitest)"
rm -f test-results/vitest.json
npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json
if [ -s test-results/vitest.json ]; then
  read -r p f s < <(node -e 'const r=require("./test-results/vitest.json");console.log(r.numPassedTests,r.numFailedTests,r.numPendingTests+r.numTodoTests)')
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  # a suite that failed to load has no tests in it, so count it as a failure
  sf=$(node -e 'const r=require("./test-results/vitest.json");console.log(r.testResults.filter(t=>t.status==="failed"&&t.assertionResults.length===0).length)')
  failed=$((failed + sf))
else
  echo "FAILED: vitest produced no report"; failed=$((failed + 1))
fi

if [ -f playwright.config.ts ]; then
  echo "==> end-to-end tests (Playwright, Debian Chromium, web host, real demo VM)"
  rm -f test-results/playwright.json
  PLAYWRIGHT_JSON_OUTPUT_NAME=test-results/playwright.json npx playwright test --reporter=list,json
  if [ -s test-results/playwright.json ]; then
    read -r p f s < <(node -e 'const s=require("./test-results/playwright.json").stats;console.log(s.expected+s.flaky,s.unexpected,s.skipped)')
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    ef=$(node -e 'console.log((require("./test-results/playwright.json").errors||[]).length)')
    failed=$((failed + ef))
  else
    echo "FAILED: playwright produced no report"; failed=$((failed + 1))
  fi
fi

if [ -f scripts/check-package.sh ]; then
  step "packaging (electron-builder --dir with a stand-in Electron, asar contents)" bash scripts/check-package.sh
fi

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
