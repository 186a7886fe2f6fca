// Optional virtual network: one subnet for the function app's VNet integration (Flex Consumption delegates it to
// Microsoft.App/environments) and one delegated to Microsoft.ContainerInstance/containerGroups for
// "Omnia classic" jobs (private container groups). Peer it, or use your own subnet via `omniaSubnetId`, to reach
// internal networks.
param vNetName string
param location string = resourceGroup().location
param tags object = {}
param addressPrefix string = '10.0.0.0/16'
param appSubnetName string = 'app'
param appSubnetPrefix string = '10.0.1.0/24'
param aciSubnetName string = 'aci-jobs'
param aciSubnetPrefix string = '10.0.2.0/24'

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' = {
  name: vNetName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: appSubnetName
        properties: {
          addressPrefix: appSubnetPrefix
          delegations: [
            {
              name: 'delegation-app'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
          privateEndpointNetworkPolicies: 'Disabled'
          privateLinkServiceNetworkPolicies: 'Enabled'
        }
      }
      {
        name: aciSubnetName
        properties: {
          addressPrefix: aciSubnetPrefix
          delegations: [
            {
              name: 'delegation-aci'
              properties: {
                serviceName: 'Microsoft.ContainerInstance/containerGroups'
              }
            }
          ]
        }
      }
    ]
  }
}

output vnetName string = vnet.name
output appSubnetID string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, appSubnetName)
output aciSubnetID string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, aciSubnetName)
