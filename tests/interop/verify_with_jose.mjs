// Verify Licentia tokens with the npm `jose` package, the way a TypeScript product would.
// Reads {"cases": [{jwks, token, product, issuer, typ, now, leeway}]} on stdin and prints
// [{"ok": payload, "header", "ids"} | {"error": "<jose error code or name>"}] on stdout.
// "ids" are the id claims decoded with the snippet of docs/token-format.md, "Identifiers"
// (null where a claim is not a canonical 22-character id).
//
// The certificate path (docs/token-format.md, "Root of trust"): a case with {root,
// certificates} instead of {jwks} embeds only the root. jose verifies each key certificate
// (key+jwt) under the root's JWK set, the certified key is imported from the certificate's
// `jwk` claim, and jose verifies the token under it; the Licentia rules a generic library
// does not know (typ, iss, jwk.kid == sub, the window holding the token's iat) are checked
// here. Such a result also has "certificates": ["ok" | "<ErrorName>"] per certificate.
import { compactVerify, createLocalJWKSet, decodeProtectedHeader, importJWK, jwtVerify } from "jose";

const ID = /^[A-Za-z0-9_-]{21}[AQgw]$/;
const toUuid = (id) => Buffer.from(id, "base64url").toString("hex").replace(/^(.{8})(.{4})(.{4})(.{4})/, "$1-$2-$3-$4-");
const idOf = (claim) => (typeof claim === "string" && ID.test(claim) ? toUuid(claim) : null);

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { cases } = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const JOSE_NAMES = {
  ERR_JWKS_NO_MATCHING_KEY: "UnknownKey",
  ERR_JWS_SIGNATURE_VERIFICATION_FAILED: "InvalidSignature",
  ERR_JWS_INVALID: "MalformedToken",
};
const isTime = (v) => Number.isInteger(v) && v >= 0 && v <= 253402300799;

class Refused extends Error {
  constructor(name) {
    super(name);
    this.code = name;
  }
}

// The certified keys: kid -> {jwk, windows: [[nbf, exp], ...]}, and each certificate's outcome.
async function certify(c) {
  const roots = createLocalJWKSet({ keys: c.root.keys });
  const keys = {};
  const outcomes = [];
  for (const certificate of c.certificates) {
    try {
      const { payload, protectedHeader } = await compactVerify(certificate, roots, {
        algorithms: ["EdDSA", "Ed25519"],
      });
      if (protectedHeader.typ !== "key+jwt") throw new Refused("WrongTokenType");
      const claims = JSON.parse(new TextDecoder().decode(payload));
      const { sub, jwk, nbf, exp } = claims;
      if (typeof sub !== "string" || !jwk || jwk.kid !== sub || "d" in jwk) throw new Refused("MalformedToken");
      if (!isTime(nbf) || !isTime(exp) || nbf > exp) throw new Refused("MalformedToken");
      if (claims.iss !== c.issuer) throw new Refused("WrongIssuer");
      keys[sub] = { jwk, windows: [...(keys[sub]?.windows ?? []), [nbf, exp]] };
      outcomes.push("ok");
    } catch (err) {
      outcomes.push(JOSE_NAMES[err.code] ?? err.code ?? err.name);
    }
  }
  return { keys, outcomes };
}

async function keyFor(c, certified) {
  if (c.jwks) return createLocalJWKSet(c.jwks);
  const kid = decodeProtectedHeader(c.token).kid;
  const entry = certified.keys[kid];
  if (!entry) throw new Refused("UnknownKey");
  return importJWK(entry.jwk, "EdDSA");
}

const results = [];
for (const c of cases) {
  const certified = c.certificates ? await certify(c) : null;
  const extra = certified ? { certificates: certified.outcomes } : {};
  try {
    const key = await keyFor(c, certified);
    const { payload, protectedHeader } = await jwtVerify(c.token, key, {
      algorithms: ["EdDSA", "Ed25519"],
      issuer: c.issuer,
      audience: c.product,
      typ: c.typ,
      currentDate: new Date(c.now * 1000),
      clockTolerance: c.leeway,
      requiredClaims: ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"],
    });
    if (certified) {
      const { windows } = certified.keys[protectedHeader.kid];
      if (!windows.some(([nbf, exp]) => nbf <= payload.iat && payload.iat <= exp)) {
        throw new Refused("UnknownKey");
      }
    }
    const ids = {
      license_id: idOf(payload.sub),
      organization_id: idOf(payload.org),
      activation_id: c.typ === "activation+jwt" ? idOf(payload.act) : null,
    };
    if (c.typ === "activation+jwt" && payload.usr !== undefined) {
      ids.user_id = idOf(payload.usr); // named users: the seat's user
    }
    results.push({ ok: payload, header: protectedHeader, ids, ...extra });
  } catch (err) {
    results.push({ error: err.code || err.name, message: String(err.message), ...extra });
  }
}
process.stdout.write(JSON.stringify(results));
