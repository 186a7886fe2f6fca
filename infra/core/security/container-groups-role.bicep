// Custom role "container group operator": just what the AzureContainer / Omnia classic runners do in the jobs'
// resource group (create, read, stop, delete container groups, read their logs), join a delegated subnet, and
// attach the jobs' user-assigned identity to a group. Narrower than Contributor, which could also create or
// delete any other resource (VMs, storage accounts, ...) there.
targetScope = 'subscription'

param roleName string
@description('Resource ids of the resource groups where the role may be assigned.')
param assignableScopes array

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, roleName)
  properties: {
    roleName: roleName
    description: 'Create, watch, stop and delete Azure Container Instances container groups for DM Job runs.'
    type: 'CustomRole'
    assignableScopes: assignableScopes
    permissions: [
      {
        actions: [
          'Microsoft.ContainerInstance/containerGroups/read'
          'Microsoft.ContainerInstance/containerGroups/write'
          'Microsoft.ContainerInstance/containerGroups/delete'
          'Microsoft.ContainerInstance/containerGroups/start/action'
          'Microsoft.ContainerInstance/containerGroups/stop/action'
          'Microsoft.ContainerInstance/containerGroups/restart/action'
          'Microsoft.ContainerInstance/containerGroups/containers/logs/read'
          'Microsoft.ContainerInstance/locations/operationresults/read'
          'Microsoft.ContainerInstance/locations/operations/read'
          'Microsoft.Network/virtualNetworks/subnets/join/action'
          'Microsoft.Network/virtualNetworks/subnets/read'
          'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action'
          'Microsoft.ManagedIdentity/userAssignedIdentities/read'
          'Microsoft.Resources/subscriptions/resourceGroups/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

output id string = role.id
