// App Service Authentication ("Easy Auth", authsettingsV2) with the Microsoft identity platform (Entra ID).
// Requests without a valid token get 401; authenticated requests reach the app with the X-MS-CLIENT-PRINCIPAL*
// headers, which shared/identity.py reads (CALLER_IDENTITY_SOURCE=easyauth). No client secret is needed: the
// app only validates bearer tokens, it does not sign users in.
param siteName string
@description('Application (client) id of the Entra app registration that represents this API.')
param clientId string
@description('Accepted token audiences; default: the client id and api://<client id>.')
param allowedAudiences array = []
@description('Client ids of applications allowed to call the API; empty: any application of the tenant.')
param allowedApplications array = []
param tenantId string = tenant().tenantId
@description('true: requests without a valid token get 401. false: tokens are validated when sent (and give the X-MS-CLIENT-PRINCIPAL headers) but token-less requests pass on to the function keys, e.g. job containers reporting progress.')
param requireAuthentication bool = true
@description('Paths served without authentication (e.g. a health probe); they still need a function key.')
param excludedPaths array = []

var audiences = empty(allowedAudiences) ? [clientId, 'api://${clientId}'] : allowedAudiences

resource site 'Microsoft.Web/sites@2023-12-01' existing = {
  name: siteName
}

resource authSettings 'Microsoft.Web/sites/config@2023-12-01' = {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
      runtimeVersion: '~1'
    }
    globalValidation: {
      requireAuthentication: requireAuthentication
      unauthenticatedClientAction: requireAuthentication ? 'Return401' : 'AllowAnonymous'
      excludedPaths: excludedPaths
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: clientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: audiences
          defaultAuthorizationPolicy: {
            allowedApplications: allowedApplications
          }
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}
