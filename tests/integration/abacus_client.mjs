// What a page's script does with /abacus: fetch and parse JSON, send the admin key as a bearer
// token, read JSONP through a <script>-like evaluation, and read the CORS header the browser
// checks. Prints one JSON line of what it saw; the pytest side holds it to Abacus's shapes.
import vm from "node:vm";

const base = process.env.ABACUS_BASE;
const origin = "https://page.example";
const seen = {};

async function json(path, init = {}) {
  const response = await fetch(base + path, { ...init, headers: { Origin: origin, ...(init.headers || {}) } });
  return { status: response.status, cors: response.headers.get("access-control-allow-origin"), body: await response.json() };
}

const created = await json("/create/script/page?initializer=10", { method: "POST" });
seen.created = created;
seen.hit = await json("/hit/script/page");
seen.set = await json("/set/script/page?value=40", {
  method: "POST",
  headers: { Authorization: `Bearer ${created.body.admin_key}` },
});
seen.update = await json(`/update/script/page?value=2&token=${encodeURIComponent(created.body.admin_key)}`, { method: "POST" });
seen.wrong = await json("/reset/script/page", { method: "POST", headers: { Authorization: "Bearer nope" } });
seen.info = await json("/info/script/page");
seen.missing = await json("/get/script/none");

const script = await (await fetch(base + "/get/script/page?callback=counter.show")).text();
const shown = [];
vm.runInNewContext(script, { counter: { show: (data) => shown.push(data) } });
seen.jsonp = shown;

const preflight = await fetch(base + "/delete/script/page", {
  method: "OPTIONS",
  headers: { Origin: origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization" },
});
seen.preflight = { status: preflight.status, methods: preflight.headers.get("access-control-allow-methods"), headers: preflight.headers.get("access-control-allow-headers") };
console.log(JSON.stringify(seen));
