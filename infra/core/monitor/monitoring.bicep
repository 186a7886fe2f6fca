// Log Analytics workspace + workspace-based Application Insights (local auth off: identity-based ingestion).
param logAnalyticsName string
param applicationInsightsName string
param location string = resourceGroup().location
param tags object = {}
param disableLocalAuth bool = true
param retentionInDays int = 30

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    retentionInDays: retentionInDays
    sku: {
      name: 'PerGB2018'
    }
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: disableLocalAuth
  }
}

output applicationInsightsName string = applicationInsights.name
output applicationInsightsId string = applicationInsights.id
output logAnalyticsWorkspaceId string = logAnalytics.id
output logAnalyticsWorkspaceName string = logAnalytics.name
// The workspace GUID (what ACI diagnostics call the workspace id); not a secret.
output logAnalyticsCustomerId string = logAnalytics.properties.customerId
