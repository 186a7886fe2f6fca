// Durable Task Data Contributor on the scheduler for the app's identity (and optionally the deploying user,
// for the DTS dashboard).
param dtsName string
param principalId string
param principalType string = 'ServicePrincipal'

var durableTaskDataContributorRoleId = '0ad04412-c4d5-4796-b79c-f76d14c8d402' // Durable Task Data Contributor

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' existing = {
  name: dtsName
}

resource dtsRoleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(scheduler.id, principalId, durableTaskDataContributorRoleId)
  scope: scheduler
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataContributorRoleId)
    principalId: principalId
    principalType: principalType
  }
}
