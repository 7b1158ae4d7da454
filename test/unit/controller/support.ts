import type { UsableRegistration } from "../../../src/controller/registrations/directory.js";

/** A ClusterAppRegistration every check lets a request use, with a client-secret credential. */
export const USABLE_REGISTRATION: UsableRegistration = {
  ref: "ClusterAppRegistration:saas-app",
  display: "ClusterAppRegistration saas-app",
  spec: {
    clientId: "6731de76-14a6-49ae-97bc-6eba6914391e",
    cloud: "AzurePublic",
    credential: { clientSecret: { secretRef: { name: "app-cred", key: "client-secret" } } },
  },
  credentialNamespace: "apptoken-system",
};
