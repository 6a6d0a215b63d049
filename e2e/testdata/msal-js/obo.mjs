// Microsoft's @azure/msal-node, unmodified, performing the on-behalf-of flow
// (acquireTokenOnBehalfOf) against deputy: configuration only (e2e/obo_msal_test.go).
//
// stdin: {"authority": deputy's issuer, "clientId", "clientSecret",
//         "authorityMetadata": deputy's discovery document (a JSON string),
//         "requests": [{"assertion", "scopes": [...], "pauseMs"}, ...]}
//        (pauseMs, optional: wait that long before the request, so that MSAL's
//        clock moves on between two requests)
// stdout: one result per request: {"accessToken", "scopes", "tokenType",
//         "expiresOn"} or {"error", "errorCode", "errorMessage"}.
// The CA of deputy's certificate comes from NODE_EXTRA_CA_CERTS.
import { ConfidentialClientApplication, LogLevel } from "@azure/msal-node";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const cfg = JSON.parse(input);

const host = new URL(cfg.authority).host;
const app = new ConfidentialClientApplication({
  auth: {
    clientId: cfg.clientId,
    clientSecret: cfg.clientSecret,
    authority: cfg.authority,
    knownAuthorities: [host],
    authorityMetadata: cfg.authorityMetadata,
  },
  system: {
    loggerOptions: {
      logLevel: LogLevel.Warning,
      piiLoggingEnabled: false,
      loggerCallback: (_level, message) => process.stderr.write(message + "\n"),
    },
  },
});

const out = [];
for (const r of cfg.requests) {
  if (r.pauseMs) await new Promise((ok) => setTimeout(ok, r.pauseMs));
  try {
    const res = await app.acquireTokenOnBehalfOf({ oboAssertion: r.assertion, scopes: r.scopes });
    out.push({
      accessToken: res.accessToken,
      scopes: res.scopes,
      tokenType: res.tokenType,
      expiresOn: res.expiresOn ? res.expiresOn.toISOString() : null,
      fromCache: res.fromCache,
    });
  } catch (e) {
    out.push({ error: String(e && e.name), errorCode: e && e.errorCode, errorMessage: e && e.errorMessage });
  }
}
process.stdout.write(JSON.stringify(out));
