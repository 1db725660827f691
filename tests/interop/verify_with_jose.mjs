// Verify Licentia tokens with the npm `jose` package, the way a TypeScript product would.
// Reads {"cases": [{jwks, token, product, issuer, typ, now, leeway}]} on stdin and prints
// [{"ok": payload, "header", "ids"} | {"error": "<jose error code or name>"}] on stdout.
// "ids" are the id claims decoded with the snippet of docs/token-format.md, "Identifiers"
// (null where a claim is not a canonical 22-character id).
import { createLocalJWKSet, jwtVerify } from "jose";

const ID = /^[A-Za-z0-9_-]{21}[AQgw]$/;
const toUuid = (id) => Buffer.from(id, "base64url").toString("hex").replace(/^(.{8})(.{4})(.{4})(.{4})/, "$1-$2-$3-$4-");
const idOf = (claim) => (typeof claim === "string" && ID.test(claim) ? toUuid(claim) : null);

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { cases } = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const results = [];
for (const c of cases) {
  try {
    const JWKS = createLocalJWKSet(c.jwks);
    const { payload, protectedHeader } = await jwtVerify(c.token, JWKS, {
      algorithms: ["EdDSA", "Ed25519"],
      issuer: c.issuer,
      audience: c.product,
      typ: c.typ,
      currentDate: new Date(c.now * 1000),
      clockTolerance: c.leeway,
      requiredClaims: ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"],
    });
    const ids = {
      license_id: idOf(payload.sub),
      organization_id: idOf(payload.org),
      activation_id: c.typ === "activation+jwt" ? idOf(payload.act) : null,
    };
    results.push({ ok: payload, header: protectedHeader, ids });
  } catch (err) {
    results.push({ error: err.code || err.name, message: String(err.message) });
  }
}
process.stdout.write(JSON.stringify(results));
