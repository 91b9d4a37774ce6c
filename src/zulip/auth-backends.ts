// Zulip's authentication backends: the names stored in zerver_realmauthenticationmethod and the
// classes named in settings.AUTHENTICATION_BACKENDS, in the order of zproject/backends.py's
// AUTH_BACKEND_NAME_MAP (built-in backends first, then the external methods).
const AUTH_BACKENDS: { name: string; classes: string[] }[] = [
  { name: "Dev", classes: ["zproject.backends.DevAuthBackend"] },
  { name: "Email", classes: ["zproject.backends.EmailAuthBackend"] },
  { name: "LDAP", classes: ["zproject.backends.ZulipLDAPAuthBackend"] },
  { name: "RemoteUser", classes: ["zproject.backends.ZulipRemoteUserBackend"] },
  { name: "GitHub", classes: ["zproject.backends.GitHubAuthBackend"] },
  { name: "AzureAD", classes: ["zproject.backends.AzureADAuthBackend"] },
  { name: "GitLab", classes: ["zproject.backends.GitLabAuthBackend"] },
  { name: "Google", classes: ["zproject.backends.GoogleAuthBackend", "zproject.backends.GoogleMobileOauth2Backend"] },
  { name: "Apple", classes: ["zproject.backends.AppleAuthBackend"] },
  { name: "SAML", classes: ["zproject.backends.SAMLAuthBackend"] },
  { name: "OpenID Connect", classes: ["zproject.backends.GenericOpenIdConnectBackend"] },
];

/** Backend names enabled server-wide by AUTHENTICATION_BACKENDS, in Zulip's order. */
function enabledBackendNames(authenticationBackends: string[]): string[] {
  const set = new Set(authenticationBackends);
  return AUTH_BACKENDS.filter((b) => b.classes.some((c) => set.has(c))).map((b) => b.name);
}

/** realm.authentication_methods_dict(): every server-enabled backend → whether the realm enables it. */
export function authenticationMethodsDict(serverBackends: string[], realmMethods: Set<string>): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const name of enabledBackendNames(serverBackends)) out[name] = realmMethods.has(name);
  return out;
}
