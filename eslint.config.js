// ESLint (flat config): the recommended JavaScript and typescript-eslint rules, plus a few that
// catch real mistakes. Formatting is prettier's job (.prettierrc), unused files and exports are
// knip's (knip.json), and the full folder import rules are test/layout.test.ts's: the one
// boundary repeated here (nothing in product code imports src/dev) is the one an editor should
// flag as soon as it is typed.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

// The Node.js globals the plain-JavaScript scripts use (TypeScript files get theirs from @types/node).
const nodeGlobals = Object.fromEntries(
  [
    "AbortController",
    "AbortSignal",
    "Buffer",
    "URL",
    "URLSearchParams",
    "TextDecoder",
    "TextEncoder",
    "clearImmediate",
    "clearInterval",
    "clearTimeout",
    "console",
    "crypto",
    "fetch",
    "globalThis",
    "performance",
    "process",
    "queueMicrotask",
    "setImmediate",
    "setInterval",
    "setTimeout",
    "structuredClone",
  ].map((name) => [name, "readonly"]),
);
const commonJsGlobals = { require: "readonly", module: "writable", exports: "writable", __dirname: "readonly", __filename: "readonly" };

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "coverage/", "bench/.data/", "test/fixtures/", ".tmp/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: nodeGlobals },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // `_name` marks a parameter or binding that is deliberately unused.
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none", ignoreRestSiblings: true }],
      // Database rows and JSON documents are `any` at the boundaries by design (strict tsc checks the rest).
      "@typescript-eslint/no-explicit-any": "off",
      // Some patterns deliberately match control characters (terminal escapes, Zulip's name and
      // address checks).
      "no-control-regex": "off",
      eqeqeq: ["error", "always", { null: "ignore" }],
      "no-throw-literal": "error",
      "no-return-assign": "error",
      "no-self-compare": "error",
      "no-unmodified-loop-condition": "error",
      "no-useless-rename": "error",
      "object-shorthand": ["error", "properties"],
      "prefer-const": ["error", { destructuring: "all" }],
      radix: "error",
    },
  },
  {
    files: ["**/*.cjs"],
    languageOptions: { sourceType: "commonjs", globals: { ...nodeGlobals, ...commonJsGlobals } },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    // Product code never imports the development-only modules (they are not packaged).
    files: ["src/**/*.ts"],
    ignores: ["src/dev/**"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ group: ["**/dev/*"], message: "src/dev is development-only and is not packaged." }] }],
    },
  },
  {
    // The command line handles only its own values and what commands throw: `unknown` and
    // narrowing, never `any`.
    files: ["src/cli/**/*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "error" },
  },
);
