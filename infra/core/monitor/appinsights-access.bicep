// Role assignment on Application Insights (Monitoring Metrics Publisher for identity-based telemetry).
param appInsightsName string
param roleDefinitionID string
param principalID string
param principalType string = 'ServicePrincipal'

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource appInsightsRoleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalID, roleDefinitionID)
  scope: applicationInsights
  properties: {
    roleDefinitionId: resourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionID)
    principalId: principalID
    principalType: principalType
  }
}
