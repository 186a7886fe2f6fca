// A function app on a Flex Consumption plan: runtime, scale and the deployment package container are set in
// `functionAppConfig`; the package is read with the user-assigned identity (no storage keys anywhere).
// App settings are written by the caller (infra/app/api.bicep) as a `config/appsettings` resource, because some
// of them (DM_JOB_URL) need this site's host name.
param name string
param location string = resourceGroup().location
param tags object = {}

// Reference properties
param appServicePlanId string
param storageAccountName string
param deploymentStorageContainerName string
param virtualNetworkSubnetId string = ''
@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

// Runtime properties
@allowed(['dotnet-isolated', 'node', 'python', 'java', 'powershell', 'custom'])
param runtimeName string
@allowed(['3.10', '3.11', '3.12', '7.4', '8.0', '9.0', '10', '11', '17', '20', '22'])
param runtimeVersion string
param kind string = 'functionapp,linux'

// Scale properties
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

resource stg 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource functions 'Microsoft.Web/sites@2023-12-01' = {
  name: name
  location: location
  tags: tags
  kind: kind
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: appServicePlanId
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${stg.properties.primaryEndpoints.blob}${deploymentStorageContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: runtimeName
        version: runtimeVersion
      }
    }
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
  }
}

output name string = functions.name
output defaultHostName string = functions.properties.defaultHostName
output uri string = 'https://${functions.properties.defaultHostName}'
