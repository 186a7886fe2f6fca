// A role assignment on the resource group this module is deployed to.
param principalId string
param roleDefinitionId string
@description('Full resource id of a custom role definition; when set it is used instead of roleDefinitionId.')
param customRoleDefinitionResourceId string = ''
param principalType string = 'ServicePrincipal'
param description string = ''

var roleId = empty(customRoleDefinitionResourceId) ? subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId) : customRoleDefinitionResourceId

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, roleId)
  properties: {
    roleDefinitionId: roleId
    principalId: principalId
    principalType: principalType
    description: description
  }
}
