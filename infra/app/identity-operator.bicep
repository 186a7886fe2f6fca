// Managed Identity Operator for the app's identity on the jobs' identity: needed to attach that identity to the
// container groups it creates (registry pulls), without giving job code the app's own identity.
param jobsIdentityName string
param principalId string

var managedIdentityOperatorRoleId = 'f1a07417-d97a-45cb-824c-7a7467783830' // Managed Identity Operator

resource jobsIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: jobsIdentityName
}

resource operator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(jobsIdentity.id, principalId, managedIdentityOperatorRoleId)
  scope: jobsIdentity
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', managedIdentityOperatorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
