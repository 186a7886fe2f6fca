// Assign the container-group role on the VNet (so the app may put container groups into its delegated subnet).
param vNetName string
param principalId string
param roleDefinitionResourceId string

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' existing = {
  name: vNetName
}

resource joinSubnet 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vnet.id, principalId, roleDefinitionResourceId)
  scope: vnet
  properties: {
    roleDefinitionId: roleDefinitionResourceId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
