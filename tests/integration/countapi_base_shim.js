// Loaded by mocha (--require) before countapi-js: points the client's fixed base URL,
// https://api.countapi.xyz, at $COUNTAPI_BASE, without editing the package.
const fetchPath = require.resolve("cross-fetch", { paths: [process.cwd()] });
const realFetch = require(fetchPath);
const UPSTREAM = "https://api.countapi.xyz";
const base = (process.env.COUNTAPI_BASE || "").replace(/\/+$/, "");
function redirected(input, init) {
  if (typeof input === "string" && input.startsWith(UPSTREAM)) {
    input = base + input.slice(UPSTREAM.length);
  }
  return realFetch(input, init);
}
Object.assign(redirected, realFetch);
redirected.default = redirected;
require.cache[fetchPath].exports = redirected;
