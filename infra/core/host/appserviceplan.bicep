// App Service plan; for this app a Flex Consumption plan (FC1, Linux).
param name string
param location string = resourceGroup().location
param tags object = {}
param kind string = 'functionapp'
param reserved bool = true
param sku object = {
  name: 'FC1'
  tier: 'FlexConsumption'
}

resource appServicePlan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: name
  location: location
  tags: tags
  kind: kind
  sku: sku
  properties: {
    reserved: reserved
  }
}

output id string = appServicePlan.id
output name string = appServicePlan.name
