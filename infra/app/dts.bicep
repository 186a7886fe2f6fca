// Durable Task Scheduler (the managed Durable Functions backend) and its task hub.
param name string
param taskHubName string
param location string = resourceGroup().location
param tags object = {}
@allowed(['Consumption', 'Dedicated'])
param skuName string = 'Consumption'
param skuCapacity int = 1
@description('IP ranges allowed to reach the scheduler; an empty list denies everything.')
param ipAllowlist array = ['0.0.0.0/0']

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    ipAllowlist: ipAllowlist
    sku: (skuName == 'Consumption') ? { name: skuName } : { name: skuName, capacity: skuCapacity }
  }
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = {
  parent: scheduler
  name: taskHubName
}

output dtsName string = scheduler.name
output dtsEndpoint string = scheduler.properties.endpoint
output taskHubName string = taskHub.name
