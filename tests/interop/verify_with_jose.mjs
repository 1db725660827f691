// Verify Licentia tokens with the npm `jose` package, the way a TypeScript product would.
// Reads {"cases": [{jwks, token, product, issuer, typ, now, leeway}]} on stdin and prints
// [{"ok": payload} | {"error": "<jose error code or name>"}] on stdout.
import { createLocalJWKSet, jwtVerify } from "jose";

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
    results.push({ ok: payload, header: protectedHeader });
  } catch (err) {
    results.push({ error: err.code || err.name, message: String(err.message) });
  }
}
process.stdout.write(JSON.stringify(results));
