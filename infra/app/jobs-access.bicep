// Rights of the app's identity in the jobs' resource group (deployed with scope = that group): create and
// manage container groups. Either the narrow custom role (default) or Contributor as a fallback for tenants where
// custom roles cannot be created.
param principalId string
param useCustomRole bool = true
param customRoleDefinitionResourceId string = ''

var contributorRoleId = 'b24988ac-6180-42a0-ab88-20f7382dd24c' // Contributor (fallback only)

module assignment '../core/security/role-assignment-rg.bicep' = {
  name: 'jobs-container-groups-access'
  params: {
    principalId: principalId
    roleDefinitionId: contributorRoleId
    customRoleDefinitionResourceId: useCustomRole ? customRoleDefinitionResourceId : ''
    description: 'DM Job function app: run jobs as ACI container groups'
  }
}
